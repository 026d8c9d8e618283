// SRTP protection (RFC 3711, RFC 7714) of one outgoing RTP packet in place, for the two profiles Amphi negotiates.
// The key schedules are set up once per sealer; per packet only the IV changes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

struct evp_cipher_ctx_st;
struct hmac_ctx_st;

namespace amphi {

// DTLS-SRTP protection profile ids (RFC 5764 §4.1.2, RFC 7714 §14.2), as in src/media/protocol/srtp/profiles.ts.
enum class SrtpProfileId : uint32_t { kAesCm128HmacSha1_80 = 0x0001, kAeadAes128Gcm = 0x0007 };

class SrtpSealer {
 public:
  // Null with `error` set when the profile or a key length is wrong or OpenSSL refuses the key.
  static SrtpSealer* Create(uint32_t profile_id, const uint8_t* key, size_t key_length, const uint8_t* salt,
                            size_t salt_length, const uint8_t* auth_key, size_t auth_key_length, std::string* error);
  ~SrtpSealer();
  SrtpSealer(const SrtpSealer&) = delete;
  SrtpSealer& operator=(const SrtpSealer&) = delete;

  size_t tag_length() const { return profile_ == SrtpProfileId::kAeadAes128Gcm ? 16 : 10; }

  // Encrypts packet[header_length, length) in place and writes the tag at packet + length (the caller leaves
  // tag_length() bytes there). SSRC and sequence number are read from the packet's header. False if OpenSSL fails.
  bool Seal(uint8_t* packet, size_t length, size_t header_length, uint32_t roc);

 private:
  explicit SrtpSealer(SrtpProfileId profile) : profile_(profile) {}
  bool SealGcm(uint8_t* packet, size_t length, size_t header_length, uint32_t ssrc, uint32_t roc, uint16_t seq);
  bool SealCmHmac(uint8_t* packet, size_t length, size_t header_length, uint32_t ssrc, uint32_t roc, uint16_t seq);

  SrtpProfileId profile_;
  uint8_t salt_[14] = {};
  evp_cipher_ctx_st* cipher_ = nullptr;
  hmac_ctx_st* hmac_ = nullptr;
};

}  // namespace amphi
