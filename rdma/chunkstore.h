/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef HEC_RDMA_CHUNKSTORE_H
#define HEC_RDMA_CHUNKSTORE_H
#endif
