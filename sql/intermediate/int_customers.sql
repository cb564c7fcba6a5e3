-- int_customers
-- Grain: one row per customer with at least one purchase in the snapshot.
-- Inputs: int_orders, int_purchase_days; $snapshot_date, $loyalty_window_days, $gross_margin.
-- Customers whose orders are all returns or cancellations have no purchase occasion and are
-- not customers for value metrics.

with orders as (

    select * from int_orders
    where order_kind <> 'cancelled'

),

purchase_days as (

    select * from int_purchase_days

),

order_totals as (

    select
        customer_id,
        count(*) filter (where is_purchase) as order_count,
        sum(gross_amount) as gross_revenue,
        sum(returned_amount) as returned_revenue,
        sum(net_amount) as net_revenue,
        sum((net_amount * coalesce(margin_rate, $gross_margin))::decimal(18, 4)) as gross_profit,
        sum(net_amount) filter (where order_date > $snapshot_date::date - $loyalty_window_days::integer) as window_spend,
        count(*) filter (where is_purchase and order_date > $snapshot_date::date - $loyalty_window_days::integer) as window_orders,
        -- (order_ts, order_id) breaks ties between orders placed at the same instant
        arg_min(channel, (order_ts, order_id)) filter (where is_purchase) as acquisition_channel,
        arg_min(referred_by, (order_ts, order_id)) filter (where referred_by is not null) as referred_by,
        arg_max(email_hmac, (order_ts, order_id)) filter (where email_hmac is not null) as email_hmac

    from orders
    group by customer_id

),

rhythm as (

    -- Dates of the first, second-to-last and last purchase day give the customer's rhythm.
    select
        customer_id,
        count(*) as purchase_days,
        min(purchase_date) as first_purchase_date,
        max(purchase_date) as last_purchase_date,
        max(purchase_date, 2)[2] as previous_purchase_date

    from purchase_days
    group by customer_id

),

joined as (

    select
        r.customer_id,
        r.first_purchase_date,
        r.last_purchase_date,
        r.previous_purchase_date,
        r.purchase_days,
        t.order_count,
        t.gross_revenue,
        t.returned_revenue,
        t.net_revenue,
        t.gross_profit,
        coalesce(t.window_spend, 0) as window_spend,
        coalesce(t.window_orders, 0) as window_orders,
        lower(t.acquisition_channel) as acquisition_channel,
        t.referred_by,
        t.email_hmac,
        datediff('day', r.last_purchase_date, $snapshot_date::date) as recency_days,
        datediff('day', r.first_purchase_date, $snapshot_date::date) as tenure_days,
        case when r.purchase_days >= 2
            then datediff('day', r.first_purchase_date, r.last_purchase_date) / (r.purchase_days - 1)
        end as mean_gap_days,
        case when r.purchase_days >= 2
            then datediff('day', r.previous_purchase_date, r.last_purchase_date)
        end as last_gap_days,
        case when r.purchase_days >= 3
            then datediff('day', r.first_purchase_date, r.previous_purchase_date) / (r.purchase_days - 2)
        end as prior_gap_days

    from rhythm as r
    inner join order_totals as t using (customer_id)

)

select * from joined
