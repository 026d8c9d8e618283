// Datagrams gathered during one turn of the event loop and handed to the kernel with sendmmsg: one system call
// for a whole fan-out instead of one per packet.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace amphi {

class DatagramBatch {
 public:
  void Clear() { count_ = 0; }
  // `data` must stay valid until Send(); `ipv4` and `port` in host byte order.
  void Add(uint8_t* data, size_t length, uint32_t ipv4, uint16_t port, uint32_t* status);
  // Sends everything added on the non-blocking UDP socket `fd`. Each datagram's status becomes 0 when the kernel
  // took it, else the errno that refused it; a full socket buffer (EAGAIN) drops the rest, as the network would.
  // Returns how many were sent.
  size_t Send(int fd);

 private:
  size_t count_ = 0;
  std::vector<mmsghdr> messages_;
  std::vector<iovec> vectors_;
  std::vector<sockaddr_in> addresses_;
  std::vector<uint32_t*> statuses_;
};

// The local port of `fd` if it is a bound IPv4 UDP socket, else -1: how JavaScript checks that the descriptor it
// found behind a dgram socket is that socket.
int BoundUdp4Port(int fd);

}  // namespace amphi
