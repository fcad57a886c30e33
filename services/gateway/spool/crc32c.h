#pragma once
// CRC-32C (Castagnoli), table driven: the checksum of every spool record. Software only (about
// 1 GB/s on this machine class, far more than the spool's write rate); no SSE4.2 dependency.
//
//   uint32_t crc = Crc32c(data, size);
//   crc = Crc32cExtend(crc, more, more_size);  // == Crc32c(data + more)
//
// Thread-safe (the table is built at compile time).

#include <cstddef>
#include <cstdint>

namespace tollgate::gateway {

uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t size);
inline uint32_t Crc32c(const void* data, size_t size) { return Crc32cExtend(0, data, size); }

}  // namespace tollgate::gateway
