/* SPDX-License-Identifier: BSD-3-Clause */
/* placeholder: replaced by its owner */
typedef int hec_placeholder_t;
