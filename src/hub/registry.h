/*
 * registry.h — internals of the hub's in-memory registry shared inside
 * src/hub (the public part is in hub.h).
 */
#ifndef LF_HUB_REGISTRY_H
#define LF_HUB_REGISTRY_H

#include "hub/hub.h"

/* Applies one event of a unit-* or user-* stream to the registry
 * (UnitRegistered, UserCreated; anything else is ignored). Idempotent:
 * called by the code that appended the event (so the next request sees
 * it at once) and again by the registry's own log subscription. */
void lf_registry_apply(lf_hub *h, const char *type, const char *data_json);

/* Parses the data of a UnitRegistered event into out. 0 or LF_EINVAL. */
int lf_registry_parse_unit(const char *data_json, lf_unit_info *out);

#endif
