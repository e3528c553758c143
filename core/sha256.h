// SHA-256 (FIPS 180-4), for data-file verification and file checksums.
#ifndef SPINNET_CORE_SHA256_H_
#define SPINNET_CORE_SHA256_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace spinnet {

std::array<uint8_t, 32> Sha256(absl::string_view data);
std::string Sha256Hex(absl::string_view data);  // lowercase hex

}  // namespace spinnet

#endif  // SPINNET_CORE_SHA256_H_
