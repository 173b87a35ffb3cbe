"""Generated from FEATURES in models/features.py by `python -m insiderwatch.models.features`; do not edit.

``feature_values`` is plain Python for the reference path; ``feature_values_compiled``
is the same function compiled by numba for the detection kernel.
"""

from math import log

from numba import njit

N_FEATURES = 17


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
    # records_vs_role
    v0 = log((1.0 + record_count) / (1.0 + p99_records))
    # events_10m_vs_actor
    v1 = log((1.0 + events_10m) / (1.0 + hour_events_typ / 6.0)) - role_pulse
    # records_1h_vs_actor
    v2 = log((1.0 + records_1h) / (1.0 + hour_records_typ)) - role_pulse
    # new_resources_1h_vs_actor
    v3 = log((1.0 + new_resources_1h) / (1.0 + hour_events_typ)) - role_pulse
    # no_ticket_1h_vs_actor
    v4 = log((1.0 + no_ticket_1h) / (1.0 + events_1h * no_ticket_share)) - role_pulse
    # rare_accesses_1h
    v5 = log(1.0 + rare_1h)
    # rare_accesses_24h
    v6 = log(1.0 + rare_24h)
    # no_ticket_24h_vs_actor
    v7 = log((1.0 + no_ticket_24h) / (1.0 + day_events_typ * no_ticket_share)) - role_pulse
    # access_role_rarity
    v8 = pair_rarity
    # field_role_rarity
    v9 = field_rarity
    # time_novelty
    v10 = time_novelty
    # access_surprise
    v11 = surprise
    # new_ip_or_device
    v12 = new_ip + new_device
    # denied_1h
    v13 = log(1.0 + denied_1h)
    # pair_share_24h_vs_actor
    v14 = log((1.0 + pair_count_24h) / (1.0 + events_24h * p_pair))
    # pair_24h_vs_actor
    v15 = log((1.0 + pair_count_24h) / (1.0 + day_events_typ * p_pair)) - role_pulse
    # subject_writes_24h
    v16 = log(1.0 + subject_writes_24h)
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
        v16,
    )


feature_values_compiled = njit(cache=True, nogil=True)(feature_values)
