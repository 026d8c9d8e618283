// The sealers of one JavaScript thread by small integer slot: a batch names each packet's sealer by slot, so a
// flush makes no Node-API call per packet, and a slot out of range or freed is refused rather than followed.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "srtp-sealer.h"

namespace amphi {

class SealerRegistry {
 public:
  uint32_t Add(std::unique_ptr<SrtpSealer> sealer);
  void Remove(uint32_t slot);
  // Null for a slot that holds no sealer.
  SrtpSealer* Find(uint32_t slot) const { return slot < slots_.size() ? slots_[slot].get() : nullptr; }

 private:
  std::vector<std::unique_ptr<SrtpSealer>> slots_;
  std::vector<uint32_t> free_slots_;
};

}  // namespace amphi
