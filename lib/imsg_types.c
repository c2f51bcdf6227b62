#include <stdint.h>

#include "imsg_types.h"

#define IMSG_NAME(n)	#n,
static const char *imsg_names[IMSG_TYPE_MAX] = {
	IMSG_TYPE_LIST(IMSG_NAME)
};
#undef IMSG_NAME

const char *
imsg_type_name(uint32_t type)
{
	if (type >= IMSG_TYPE_MAX)
		return "IMSG_UNKNOWN";
	return imsg_names[type];
}
