#include "sealer-registry.h"

namespace amphi {

uint32_t SealerRegistry::Add(std::unique_ptr<SrtpSealer> sealer) {
  if (!free_slots_.empty()) {
    const uint32_t slot = free_slots_.back();
    free_slots_.pop_back();
    slots_[slot] = std::move(sealer);
    return slot;
  }
  slots_.push_back(std::move(sealer));
  return static_cast<uint32_t>(slots_.size() - 1);
}

void SealerRegistry::Remove(uint32_t slot) {
  if (slot >= slots_.size() || !slots_[slot]) return;
  slots_[slot].reset();
  free_slots_.push_back(slot);
}

}  // namespace amphi
