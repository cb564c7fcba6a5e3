-- mart_segment_transitions  (published as segment_transitions)
-- Grain: one row per customer with at least one purchase, per snapshot.
-- Inputs: int_customer_segment_transitions.
-- Each customer's RFM segment on the previous day (D - 1, recomputed from this snapshot's own
-- orders) and now, whether it changed and the latest day within the lookback
-- ($transition_lookback_days in int_customer_segment_transitions) on which it changed (null:
-- unchanged for at least that many days); customers of D - 1 that are no longer customers are
-- only in mart_segment_transition_summary.

with transitions as (

    select * from int_customer_segment_transitions
    where not int_customer_segment_transitions.disappeared

),

final as (

    select
        transitions.customer_id,
        transitions.previous_snapshot_date,
        transitions.previous_segment,
        transitions.rfm_segment,
        transitions.changed,
        transitions.segment_changed_on

    from transitions

)

select * from final
order by final.customer_id
