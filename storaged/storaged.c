/* storaged: the one owner of the state directory (to be written). */
#include "proc.h"

const struct proc_role storaged_role = {
	.id = PROC_STORAGED,
};
