/* control: serves posternctl (to be written). */
#include "proc.h"

const struct proc_role control_role = {
	.id = PROC_CONTROL,
};
