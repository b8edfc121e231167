/* SPDX-License-Identifier: BSD-3-Clause */
/* placeholder: replaced by its owner */
int main(void) { return 1; }
