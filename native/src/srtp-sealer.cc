#include "srtp-sealer.h"

// HMAC_CTX is deprecated in OpenSSL 3 but kept, and it is the one API that re-keys nothing per packet.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>

namespace amphi {
namespace {

constexpr size_t kKeyLength = 16;
constexpr size_t kGcmSaltLength = 12;
constexpr size_t kCmSaltLength = 14;
constexpr size_t kHmacKeyLength = 20;
constexpr int kGcmTagLength = 16;
constexpr size_t kHmacTagLength = 10;

uint32_t ReadU32(const uint8_t* at) {
  return (uint32_t{at[0]} << 24) | (uint32_t{at[1]} << 16) | (uint32_t{at[2]} << 8) | uint32_t{at[3]};
}

void XorU32(uint8_t* at, uint32_t value) {
  at[0] ^= value >> 24;
  at[1] ^= value >> 16;
  at[2] ^= value >> 8;
  at[3] ^= value;
}

}  // namespace

SrtpSealer* SrtpSealer::Create(uint32_t profile_id, const uint8_t* key, size_t key_length, const uint8_t* salt,
                               size_t salt_length, const uint8_t* auth_key, size_t auth_key_length,
                               std::string* error) {
  const bool gcm = profile_id == static_cast<uint32_t>(SrtpProfileId::kAeadAes128Gcm);
  const bool cm = profile_id == static_cast<uint32_t>(SrtpProfileId::kAesCm128HmacSha1_80);
  if (!gcm && !cm) {
    *error = "unsupported SRTP profile id " + std::to_string(profile_id);
    return nullptr;
  }
  if (key_length != kKeyLength || salt_length != (gcm ? kGcmSaltLength : kCmSaltLength) ||
      auth_key_length != (gcm ? 0 : kHmacKeyLength)) {
    *error = "wrong SRTP session key, salt or authentication key length for the profile";
    return nullptr;
  }
  auto* sealer = new SrtpSealer(static_cast<SrtpProfileId>(profile_id));
  std::memcpy(sealer->salt_, salt, salt_length);
  sealer->cipher_ = EVP_CIPHER_CTX_new();
  bool ok = sealer->cipher_ != nullptr &&
            EVP_EncryptInit_ex(sealer->cipher_, gcm ? EVP_aes_128_gcm() : EVP_aes_128_ctr(), nullptr, key, nullptr) == 1;
  if (ok && cm) {
    sealer->hmac_ = HMAC_CTX_new();
    ok = sealer->hmac_ != nullptr &&
         HMAC_Init_ex(sealer->hmac_, auth_key, static_cast<int>(auth_key_length), EVP_sha1(), nullptr) == 1;
  }
  if (!ok) {
    delete sealer;
    *error = "OpenSSL refused the SRTP session key";
    return nullptr;
  }
  return sealer;
}

SrtpSealer::~SrtpSealer() {
  if (cipher_ != nullptr) EVP_CIPHER_CTX_free(cipher_);
  if (hmac_ != nullptr) HMAC_CTX_free(hmac_);
}

bool SrtpSealer::Seal(uint8_t* packet, size_t length, size_t header_length, uint32_t roc) {
  const uint16_t seq = static_cast<uint16_t>((packet[2] << 8) | packet[3]);
  const uint32_t ssrc = ReadU32(packet + 8);
  return profile_ == SrtpProfileId::kAeadAes128Gcm ? SealGcm(packet, length, header_length, ssrc, roc, seq)
                                                    : SealCmHmac(packet, length, header_length, ssrc, roc, seq);
}

// RFC 7714 §8.1: IV = (0x0000 | SSRC | ROC | SEQ) XOR salt; the header is the associated data.
bool SrtpSealer::SealGcm(uint8_t* packet, size_t length, size_t header_length, uint32_t ssrc, uint32_t roc,
                         uint16_t seq) {
  uint8_t iv[kGcmSaltLength];
  std::memcpy(iv, salt_, kGcmSaltLength);
  XorU32(iv + 2, ssrc);
  XorU32(iv + 6, roc);
  iv[10] ^= seq >> 8;
  iv[11] ^= seq & 0xff;
  int written = 0;
  const int payload_length = static_cast<int>(length - header_length);
  return EVP_EncryptInit_ex(cipher_, nullptr, nullptr, nullptr, iv) == 1 &&
         EVP_EncryptUpdate(cipher_, nullptr, &written, packet, static_cast<int>(header_length)) == 1 &&
         (payload_length == 0 ||
          EVP_EncryptUpdate(cipher_, packet + header_length, &written, packet + header_length, payload_length) == 1) &&
         EVP_EncryptFinal_ex(cipher_, packet + length, &written) == 1 &&
         EVP_CIPHER_CTX_ctrl(cipher_, EVP_CTRL_GCM_GET_TAG, kGcmTagLength, packet + length) == 1;
}

// RFC 3711 §4.1.1: IV = (salt·2^16) XOR (SSRC·2^64) XOR (index·2^16), index = ROC·2^16 + SEQ; §4.2: the tag is
// HMAC-SHA1 over the encrypted packet then ROC, cut to 80 bits.
bool SrtpSealer::SealCmHmac(uint8_t* packet, size_t length, size_t header_length, uint32_t ssrc, uint32_t roc,
                            uint16_t seq) {
  uint8_t iv[16] = {};
  std::memcpy(iv, salt_, kCmSaltLength);
  XorU32(iv + 4, ssrc);
  XorU32(iv + 8, roc);
  iv[12] ^= seq >> 8;
  iv[13] ^= seq & 0xff;
  int written = 0;
  const int payload_length = static_cast<int>(length - header_length);
  if (EVP_EncryptInit_ex(cipher_, nullptr, nullptr, nullptr, iv) != 1 ||
      (payload_length > 0 &&
       EVP_EncryptUpdate(cipher_, packet + header_length, &written, packet + header_length, payload_length) != 1)) {
    return false;
  }
  const uint8_t roc_bytes[4] = {static_cast<uint8_t>(roc >> 24), static_cast<uint8_t>(roc >> 16),
                                static_cast<uint8_t>(roc >> 8), static_cast<uint8_t>(roc)};
  uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int digest_length = 0;
  if (HMAC_Init_ex(hmac_, nullptr, 0, nullptr, nullptr) != 1 || HMAC_Update(hmac_, packet, length) != 1 ||
      HMAC_Update(hmac_, roc_bytes, sizeof roc_bytes) != 1 || HMAC_Final(hmac_, digest, &digest_length) != 1 ||
      digest_length < kHmacTagLength) {
    return false;
  }
  std::memcpy(packet + length, digest, kHmacTagLength);
  return true;
}

}  // namespace amphi
