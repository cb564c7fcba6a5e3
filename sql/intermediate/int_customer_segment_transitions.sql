-- int_customer_segment_transitions
-- Grain: one row per customer of this snapshot (day D) or of the previous day D - 1.
-- Inputs: int_customers, int_customer_rfm_segment, int_customer_rfm_segment_daily,
--         int_customer_lookback_states;
--         $snapshot_date, $transition_lookback_days.
-- The segment history is each customer's segment on the days D - L ... D - 1
-- (L = $transition_lookback_days), computed from this snapshot's own orders as each day's
-- snapshot would have them (int_customer_lookback_states, scored with day D by
-- int_customer_rfm_scores_daily); day D is this build. The previous snapshot is always D - 1,
-- whatever was published.
-- A customer is new when not a customer on D - 1, disappeared when a customer on D - 1 but
-- not on D (kept for completeness: both days come from the same orders, so it does not happen
-- while a customer is defined by purchases up to the day), changed when on both with a
-- different RFM segment.
-- A change day is a day d of D - L + 1 ... D on which the customer's segment differs from
-- their segment on d - 1; becoming a customer (no row on d - 1) is a change too.
-- segment_changed_on is the latest change day: null when the segment has not changed within
-- the lookback (unchanged for at least L days), and for a disappeared customer.
-- revenue and previous_revenue are net revenue to date on D and on D - 1 (null when absent).

with customers as (

    select * from int_customers

),

rfm_segments as (

    select * from int_customer_rfm_segment

),

segments_by_day as (

    select * from int_customer_rfm_segment_daily

),

lookback_states as (

    select * from int_customer_lookback_states

),

segment_history as (

    -- each lookback day's customers, with their segment that day (null: their cell has none)
    select
        lookback_states.as_of,
        lookback_states.customer_id,
        segments_by_day.rfm_segment,
        cast(lookback_states.net_revenue as decimal(18, 4)) as net_revenue
    from lookback_states
    left join segments_by_day using (as_of, customer_id)

),

current_rfm as (

    select
        $snapshot_date::date as as_of,
        customers.customer_id,
        rfm_segments.rfm_segment,
        cast(customers.net_revenue as decimal(18, 4)) as revenue

    from customers
    left join rfm_segments using (customer_id)

),

previous_rfm as (

    select
        segment_history.customer_id,
        segment_history.rfm_segment as previous_segment,
        segment_history.net_revenue as previous_revenue

    from segment_history
    where segment_history.as_of = $snapshot_date::date - 1

),

daily_segments as (

    select
        segment_history.as_of,
        segment_history.customer_id,
        segment_history.rfm_segment

    from segment_history

    union all

    select
        current_rfm.as_of,
        current_rfm.customer_id,
        current_rfm.rfm_segment

    from current_rfm

),

final_runs as (

    -- A customer is on every day from their first purchase to D (the states only grow), so
    -- their latest change day is the first day of the run of days that ends on D with D's
    -- segment: the day after the last day with another segment, else their first day. One
    -- join to D's customers and one aggregate, where a self-join of every customer-day
    -- with the day before cost 24 s at 10M orders.
    select
        daily_segments.customer_id,
        coalesce(
            max(daily_segments.as_of) filter (
                where daily_segments.rfm_segment is distinct from current_rfm.rfm_segment
            ) + 1,
            min(daily_segments.as_of)
        ) as run_start

    from daily_segments
    inner join current_rfm using (customer_id)
    group by daily_segments.customer_id

),

last_changes as (

    select
        final_runs.customer_id,
        final_runs.run_start as segment_changed_on

    from final_runs
    where final_runs.run_start > $snapshot_date::date - $transition_lookback_days::integer

),

matched as (

    select
        coalesce(current_rfm.customer_id, previous_rfm.customer_id) as customer_id,
        previous_rfm.previous_segment,
        current_rfm.rfm_segment,
        previous_rfm.previous_revenue,
        current_rfm.revenue,
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
        $snapshot_date::date - 1 as previous_snapshot_date,
        classified.previous_segment,
        classified.rfm_segment,
        classified.is_new,
        classified.disappeared,
        classified.changed,
        case
            when not classified.disappeared then last_changes.segment_changed_on
        end as segment_changed_on,
        classified.previous_revenue,
        classified.revenue

    from classified
    left join last_changes using (customer_id)

)

select * from final
