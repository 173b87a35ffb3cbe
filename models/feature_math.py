"""Generated from FEATURES in models/features.py by `python -m insiderwatch.models.features`; do not edit.

``feature_values`` is plain Python for the reference path; ``feature_values_compiled``
is the same function compiled by numba for the detection kernel.
"""

from math import exp, log, sqrt

from numba import njit

N_FEATURES = 18

# v<i> below is feature i:
#   v0: records_vs_role
#   v1: events_10m_vs_actor
#   v2: records_1h_vs_actor
#   v3: new_resources_1h_vs_actor
#   v4: no_ticket_1h_vs_actor
#   v5: rare_accesses_1h
#   v6: rare_accesses_24h
#   v7: no_ticket_24h_vs_actor
#   v8: access_role_rarity
#   v9: field_role_rarity
#   v10: time_novelty
#   v11: access_surprise
#   v12: new_ip_or_device
#   v13: denied_1h
#   v14: pair_share_24h_vs_actor
#   v15: pair_24h_vs_actor
#   v16: pair_3d_vs_actor
#   v17: subject_writes_24h


def feature_values(
    record_count,
    p99_records,
    events_10m,
    events_1h,
    events_24h,
    records_1h,
    new_resources_1h,
    no_ticket_1h,
    no_ticket_24h,
    denied_1h,
    rare_1h,
    rare_24h,
    pair_count_24h,
    pair_count_3d,
    hour_events_typ,
    hour_records_typ,
    day_events_typ,
    no_ticket_share,
    p_pair,
    pair_rarity,
    field_rarity,
    time_novelty,
    surprise,
    new_ip,
    new_device,
    subject_writes_24h,
    role_pulse,
):
    v0 = log((1.0 + record_count) / (1.0 + p99_records))
    v1 = log((1.0 + events_10m) / (1.0 + hour_events_typ / 6.0)) - role_pulse
    v2 = log((1.0 + records_1h) / (1.0 + hour_records_typ)) - role_pulse
    v3 = log((1.0 + new_resources_1h) / (1.0 + hour_events_typ)) - role_pulse
    v4 = log((1.0 + no_ticket_1h) / (1.0 + events_1h * no_ticket_share)) - role_pulse
    v5 = log(1.0 + rare_1h)
    v6 = log(1.0 + rare_24h)
    v7 = log((1.0 + no_ticket_24h) / (1.0 + day_events_typ * no_ticket_share)) - role_pulse
    v8 = pair_rarity
    v9 = field_rarity
    v10 = time_novelty
    v11 = surprise
    v12 = new_ip + new_device
    v13 = log(1.0 + denied_1h)
    v14 = log((1.0 + pair_count_24h) / (1.0 + events_24h * p_pair))
    v15 = log((1.0 + pair_count_24h) / (1.0 + day_events_typ * p_pair)) - role_pulse
    v16 = (pair_count_3d - 3.0 * day_events_typ * p_pair * exp(role_pulse)) / sqrt(9.0 + 3.0 * day_events_typ * p_pair * exp(role_pulse))
    v17 = log(1.0 + subject_writes_24h)
    return (
        v0 if v0 > 0.0 else 0.0,
        v1 if v1 > 0.0 else 0.0,
        v2 if v2 > 0.0 else 0.0,
        v3 if v3 > 0.0 else 0.0,
        v4 if v4 > 0.0 else 0.0,
        v5,
        v6,
        v7 if v7 > 0.0 else 0.0,
        v8,
        v9,
        v10,
        v11,
        v12,
        v13,
        v14 if v14 > 0.0 else 0.0,
        v15 if v15 > 0.0 else 0.0,
        v16 if v16 > 0.0 else 0.0,
        v17,
    )


feature_values_compiled = njit(cache=True, nogil=True)(feature_values)
