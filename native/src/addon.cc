// The addon's JavaScript face (Node-API): sealers for SRTP send contexts, and one call that seals a batch of RTP
// packets laid out in a buffer and sends them with sendmmsg. src/media/transport/native-addon.ts describes the
// contract from the other side; the descriptor layout below must match it.
#include <node_api.h>

#include <cerrno>
#include <memory>
#include <string>

#include "datagram-batch.h"
#include "sealer-registry.h"
#include "srtp-sealer.h"

namespace amphi {
namespace {

// One packet of a batch: eight 32-bit words in a Uint32Array.
enum DescriptorWord : uint32_t {
  kSealerSlot = 0,
  kOffset = 1,       // where the plain packet starts in the arena
  kLength = 2,       // its length; the tag is written right after it
  kHeaderLength = 3, // the RTP header with CSRCs and extensions: left in clear
  kRoc = 4,          // the rollover counter the send context chose
  kIpv4 = 5,         // destination, host byte order
  kPort = 6,
  kStatus = 7,       // out: 0 sealed (and sent), else an errno
  kDescriptorWords = 8,
};

// Per JavaScript thread (each media worker loads the addon in its own environment).
struct Instance {
  std::shared_ptr<SealerRegistry> registry = std::make_shared<SealerRegistry>();
  DatagramBatch batch;
};

// What a sealer's JavaScript object owns; it shares the registry so that finalization order at teardown is moot.
struct SealerHandle {
  std::shared_ptr<SealerRegistry> registry;
  uint32_t slot;
};

Instance* InstanceOf(napi_env env) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  return static_cast<Instance*>(data);
}

napi_value Throw(napi_env env, const std::string& message) {
  napi_throw_type_error(env, nullptr, message.c_str());
  return nullptr;
}

bool GetBuffer(napi_env env, napi_value value, uint8_t** data, size_t* length) {
  bool is_buffer = false;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer) return false;
  void* raw = nullptr;
  if (napi_get_buffer_info(env, value, &raw, length) != napi_ok) return false;
  *data = static_cast<uint8_t*>(raw);
  return true;
}

bool GetUint32(napi_env env, napi_value value, uint32_t* out) {
  napi_valuetype type;
  return napi_typeof(env, value, &type) == napi_ok && type == napi_number &&
         napi_get_value_uint32(env, value, out) == napi_ok;
}

bool GetInt32(napi_env env, napi_value value, int32_t* out) {
  napi_valuetype type;
  return napi_typeof(env, value, &type) == napi_ok && type == napi_number &&
         napi_get_value_int32(env, value, out) == napi_ok;
}

void FinalizeSealer(napi_env, void* data, void*) {
  auto* handle = static_cast<SealerHandle*>(data);
  handle->registry->Remove(handle->slot);
  delete handle;
}

// createSealer(profileId, key, salt, authKey) → { slot, tagLength }, freed when the object is collected.
napi_value CreateSealer(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t profile_id = 0;
  uint8_t *key, *salt, *auth_key;
  size_t key_length, salt_length, auth_key_length;
  if (argc != 4 || !GetUint32(env, argv[0], &profile_id) || !GetBuffer(env, argv[1], &key, &key_length) ||
      !GetBuffer(env, argv[2], &salt, &salt_length) || !GetBuffer(env, argv[3], &auth_key, &auth_key_length)) {
    return Throw(env, "createSealer(profileId, key, salt, authKey) takes a number and three Buffers");
  }
  std::string error;
  std::unique_ptr<SrtpSealer> sealer(
      SrtpSealer::Create(profile_id, key, key_length, salt, salt_length, auth_key, auth_key_length, &error));
  if (!sealer) return Throw(env, error);
  const uint32_t tag_length = static_cast<uint32_t>(sealer->tag_length());
  Instance* instance = InstanceOf(env);
  auto* handle = new SealerHandle{instance->registry, instance->registry->Add(std::move(sealer))};
  napi_value object, slot_value, tag_value;
  if (napi_create_object(env, &object) != napi_ok || napi_create_uint32(env, handle->slot, &slot_value) != napi_ok ||
      napi_create_uint32(env, tag_length, &tag_value) != napi_ok ||
      napi_set_named_property(env, object, "slot", slot_value) != napi_ok ||
      napi_set_named_property(env, object, "tagLength", tag_value) != napi_ok ||
      napi_wrap(env, object, handle, FinalizeSealer, nullptr, nullptr) != napi_ok) {
    FinalizeSealer(env, handle, nullptr);
    return Throw(env, "createSealer: could not create its object");
  }
  return object;
}

// sealBatch(fd, arena, descriptors, count) → packets sent; with fd -1 seals only and returns packets sealed.
napi_value SealBatch(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t fd = -1;
  uint32_t count = 0;
  uint8_t* arena;
  size_t arena_length;
  napi_typedarray_type array_type;
  size_t words = 0;
  void* words_data = nullptr;
  bool is_typed_array = false;
  if (argc != 4 || !GetInt32(env, argv[0], &fd) || !GetBuffer(env, argv[1], &arena, &arena_length) ||
      napi_is_typedarray(env, argv[2], &is_typed_array) != napi_ok || !is_typed_array ||
      napi_get_typedarray_info(env, argv[2], &array_type, &words, &words_data, nullptr, nullptr) != napi_ok ||
      array_type != napi_uint32_array || !GetUint32(env, argv[3], &count)) {
    return Throw(env, "sealBatch(fd, arena, descriptors, count) takes a number, a Buffer, a Uint32Array, a number");
  }
  if (static_cast<size_t>(count) * kDescriptorWords > words) return Throw(env, "sealBatch: count exceeds descriptors");
  auto* descriptors = static_cast<uint32_t*>(words_data);
  Instance* instance = InstanceOf(env);
  DatagramBatch& batch = instance->batch;
  batch.Clear();
  uint32_t sealed = 0;
  for (uint32_t i = 0; i < count; i++) {
    uint32_t* d = descriptors + static_cast<size_t>(i) * kDescriptorWords;
    SrtpSealer* sealer = instance->registry->Find(d[kSealerSlot]);
    const size_t offset = d[kOffset], length = d[kLength], header_length = d[kHeaderLength];
    if (sealer == nullptr || header_length < 12 || header_length > length ||
        offset + length + sealer->tag_length() > arena_length || d[kPort] == 0 || d[kPort] > 0xffff) {
      d[kStatus] = EINVAL;
      continue;
    }
    uint8_t* packet = arena + offset;
    if (!sealer->Seal(packet, length, header_length, d[kRoc])) {
      d[kStatus] = EIO;
      continue;
    }
    sealed++;
    d[kStatus] = 0;
    if (fd >= 0) batch.Add(packet, length + sealer->tag_length(), d[kIpv4], static_cast<uint16_t>(d[kPort]), &d[kStatus]);
  }
  const size_t result = fd >= 0 ? batch.Send(fd) : sealed;
  napi_value value;
  napi_create_uint32(env, static_cast<uint32_t>(result), &value);
  return value;
}

// boundUdp4Port(fd) → the port, or -1 if fd is not a bound IPv4 UDP socket.
napi_value BoundPort(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t fd = -1;
  if (argc != 1 || !GetInt32(env, argv[0], &fd)) return Throw(env, "boundUdp4Port(fd) takes a number");
  napi_value value;
  napi_create_int32(env, BoundUdp4Port(fd), &value);
  return value;
}

void FinalizeInstance(napi_env, void* data, void*) { delete static_cast<Instance*>(data); }

napi_value Init(napi_env env, napi_value exports) {
  if (napi_set_instance_data(env, new Instance(), FinalizeInstance, nullptr) != napi_ok) return nullptr;
  napi_value words;
  napi_create_uint32(env, kDescriptorWords, &words);
  napi_property_descriptor properties[] = {
      {"createSealer", nullptr, CreateSealer, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sealBatch", nullptr, SealBatch, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"boundUdp4Port", nullptr, BoundPort, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"descriptorWords", nullptr, nullptr, nullptr, nullptr, words, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}

}  // namespace
}  // namespace amphi

NAPI_MODULE(NODE_GYP_MODULE_NAME, amphi::Init)
