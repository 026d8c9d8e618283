#include "datagram-batch.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>

namespace amphi {
namespace {
// The kernel takes at most UIO_MAXIOV (1024) messages per sendmmsg.
constexpr size_t kMaxMessagesPerCall = 1024;
}  // namespace

void DatagramBatch::Add(uint8_t* data, size_t length, uint32_t ipv4, uint16_t port, uint32_t* status) {
  if (count_ == messages_.size()) {
    const size_t capacity = count_ == 0 ? 64 : count_ * 2;
    messages_.resize(capacity);
    vectors_.resize(capacity);
    addresses_.resize(capacity);
    statuses_.resize(capacity);
  }
  sockaddr_in& address = addresses_[count_];
  std::memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(ipv4);
  vectors_[count_] = {data, length};
  statuses_[count_] = status;
  count_++;
}

size_t DatagramBatch::Send(int fd) {
  // Pointers into the vectors are taken only now: Add() may have moved them while growing.
  for (size_t i = 0; i < count_; i++) {
    msghdr& header = messages_[i].msg_hdr;
    std::memset(&header, 0, sizeof header);
    header.msg_name = &addresses_[i];
    header.msg_namelen = sizeof(sockaddr_in);
    header.msg_iov = &vectors_[i];
    header.msg_iovlen = 1;
    messages_[i].msg_len = 0;
  }
  size_t next = 0;
  size_t sent = 0;
  while (next < count_) {
    const size_t chunk = count_ - next < kMaxMessagesPerCall ? count_ - next : kMaxMessagesPerCall;
    const int result = sendmmsg(fd, &messages_[next], static_cast<unsigned int>(chunk), 0);
    if (result > 0) {
      for (int i = 0; i < result; i++) *statuses_[next + i] = 0;
      next += result;
      sent += result;
      continue;
    }
    if (result < 0 && errno == EINTR) continue;
    const uint32_t error = result < 0 ? static_cast<uint32_t>(errno) : EIO;
    if (error == EAGAIN || error == EWOULDBLOCK || error == ENOBUFS) {
      for (; next < count_; next++) *statuses_[next] = error;
      break;
    }
    // Refused for this datagram only (an unreachable destination, say): skip it and go on.
    *statuses_[next++] = error;
  }
  count_ = 0;
  return sent;
}

int BoundUdp4Port(int fd) {
  if (fd < 0) return -1;
  int type = 0;
  socklen_t type_length = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_length) != 0 || type != SOCK_DGRAM) return -1;
  sockaddr_in address{};
  socklen_t address_length = sizeof address;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &address_length) != 0 || address.sin_family != AF_INET) {
    return -1;
  }
  return ntohs(address.sin_port);
}

}  // namespace amphi
