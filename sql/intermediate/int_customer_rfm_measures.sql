-- int_customer_rfm_measures
-- Grain: one row per day and customer scored that day: the snapshot date D and each lookback
--        day D - L ... D - 1.
-- Inputs: int_customers (D), int_customer_lookback_states (the lookback days); $snapshot_date.
-- The measures behind the R, F and M scores, side by side, each oriented so that higher earns
-- a higher score: r_measure = -(days since the last purchase) (the most recent score
-- highest); f_measure = purchase orders; m_measure = net revenue, on D only (the segment map
-- of a lookback day reads R and F alone), so it is null on the lookback days.

with customers as (

    select * from int_customers

),

lookback_states as (

    select * from int_customer_lookback_states

),

states as (

    select
        $snapshot_date::date as as_of,
        customers.customer_id,
        customers.recency_days,
        customers.order_count,
        customers.net_revenue,
        true as is_snapshot
    from customers
    union all
    select
        lookback_states.as_of,
        lookback_states.customer_id,
        lookback_states.recency_days,
        lookback_states.order_count,
        lookback_states.net_revenue,
        false as is_snapshot
    from lookback_states

),

measures as (

    select
        states.as_of,
        states.customer_id,
        states.is_snapshot,
        -states.recency_days as r_measure,
        states.order_count as f_measure,
        case when states.is_snapshot then states.net_revenue end as m_measure
    from states

)

select * from measures
