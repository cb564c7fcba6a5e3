-- int_customer_segment_transitions
-- Grain: one row per customer of this snapshot or of the previous one (the latest snapshot
--        published before this one).
-- Inputs: int_customers, int_customer_rfm_segment, stg_previous_rfm; $snapshot_date.
-- A customer is new when not in the previous snapshot (every customer, when there is none),
-- disappeared when not in this one (their purchases were corrected or deleted since), changed
-- when in both with a different RFM segment. segment_changed_on is the snapshot date for a new
-- or changed customer, else the previous snapshot's segment_changed_on (that snapshot's date
-- when it was published before segment_transitions existed); null for a disappeared one.
-- revenue and previous_revenue are net revenue to date at each snapshot (null when absent).

with customers as (

    select * from int_customers

),

rfm_segments as (

    select * from int_customer_rfm_segment

),

previous_rfm as (

    select * from stg_previous_rfm

),

previous_snapshot as (

    select max(previous_rfm.previous_snapshot_date) as previous_snapshot_date

    from previous_rfm

),

current_rfm as (

    select
        customers.customer_id,
        rfm_segments.rfm_segment,
        cast(customers.net_revenue as decimal(18, 4)) as revenue

    from customers
    left join rfm_segments using (customer_id)

),

matched as (

    select
        coalesce(current_rfm.customer_id, previous_rfm.customer_id) as customer_id,
        previous_rfm.previous_segment,
        current_rfm.rfm_segment,
        previous_rfm.previous_revenue,
        current_rfm.revenue,
        previous_rfm.previous_segment_changed_on,
        previous_rfm.customer_id is null as is_new,
        current_rfm.customer_id is null as disappeared

    from current_rfm
    full outer join previous_rfm on current_rfm.customer_id = previous_rfm.customer_id

),

classified as (

    select
        matched.*,
        not matched.is_new
            and not matched.disappeared
            and matched.previous_segment is distinct from matched.rfm_segment as changed

    from matched

),

final as (

    select
        classified.customer_id,
        previous_snapshot.previous_snapshot_date,
        classified.previous_segment,
        classified.rfm_segment,
        classified.is_new,
        classified.disappeared,
        classified.changed,
        case
            when classified.disappeared then null
            when classified.is_new or classified.changed then $snapshot_date::date
            else coalesce(
                classified.previous_segment_changed_on, previous_snapshot.previous_snapshot_date
            )
        end as segment_changed_on,
        classified.previous_revenue,
        classified.revenue

    from classified
    cross join previous_snapshot

)

select * from final
