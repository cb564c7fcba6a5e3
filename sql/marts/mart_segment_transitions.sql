-- mart_segment_transitions  (published as segment_transitions)
-- Grain: one row per customer with at least one purchase, per snapshot.
-- Inputs: int_customer_segment_transitions.
-- Each customer's RFM segment in the previous snapshot (the latest one published before this
-- one) and now, whether it changed and since when the current segment holds; customers of
-- the previous snapshot that are no longer customers are only in
-- mart_segment_transition_summary.

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
