-- int_customers
-- Grain: one row per customer with at least one purchase in the snapshot.
-- Inputs: int_orders, int_customer_purchase_summary (its snapshot cutoff);
--         $snapshot_date, $loyalty_window_days, $gross_margin.
-- Customers whose orders are all returns or cancellations have no purchase occasion and are
-- not customers for value metrics. tenure_days is lifetimes' T (first purchase day to the
-- snapshot date); the mean gap between purchase days is recency / frequency in lifetimes'
-- terms (int_customer_purchase_summary).

with orders as (

    select * from int_orders
    where int_orders.order_kind <> 'cancelled'

),

purchase_summary as (

    select * from int_customer_purchase_summary
    where int_customer_purchase_summary.cutoff = 'snapshot'

),

windowed as (

    select
        orders.*,
        orders.order_date > $snapshot_date::date - $loyalty_window_days::integer as in_loyalty_window

    from orders

),

order_totals as (

    select
        windowed.customer_id,
        count(*) filter (where windowed.is_purchase) as order_count,
        sum(windowed.gross_amount) as gross_revenue,
        sum(windowed.returned_amount) as returned_revenue,
        sum(windowed.net_amount) as net_revenue,
        sum((windowed.net_amount * coalesce(windowed.margin_rate, $gross_margin))::decimal(18, 4)) as gross_profit,
        sum(windowed.net_amount) filter (where windowed.in_loyalty_window) as window_spend,
        count(*) filter (where windowed.is_purchase and windowed.in_loyalty_window) as window_orders,
        -- (order_ts, order_id) breaks ties between orders placed at the same instant
        arg_min(windowed.channel, (windowed.order_ts, windowed.order_id)) filter (where windowed.is_purchase) as acquisition_channel,
        arg_min(windowed.referred_by, (windowed.order_ts, windowed.order_id)) filter (where windowed.referred_by is not null) as referred_by,
        arg_max(windowed.email_hmac, (windowed.order_ts, windowed.order_id)) filter (where windowed.email_hmac is not null) as email_hmac

    from windowed
    group by windowed.customer_id

),

joined as (

    select
        purchase_summary.customer_id,
        purchase_summary.first_purchase_date,
        date_trunc('month', purchase_summary.first_purchase_date)::date as first_purchase_month,
        purchase_summary.last_purchase_date,
        purchase_summary.previous_purchase_date,
        purchase_summary.second_purchase_date,
        purchase_summary.purchase_days,
        order_totals.order_count,
        order_totals.gross_revenue,
        order_totals.returned_revenue,
        order_totals.net_revenue,
        order_totals.net_revenue / order_totals.order_count as average_order_value,
        order_totals.gross_profit,
        coalesce(order_totals.window_spend, 0) as window_spend,
        coalesce(order_totals.window_orders, 0) as window_orders,
        order_totals.acquisition_channel,
        order_totals.referred_by,
        order_totals.email_hmac,
        datediff('day', purchase_summary.last_purchase_date, purchase_summary.cutoff_date) as recency_days,
        purchase_summary.T as tenure_days,
        case when purchase_summary.purchase_days >= 2
            then purchase_summary.recency / purchase_summary.frequency
        end as mean_gap_days,
        case when purchase_summary.purchase_days >= 2
            then datediff('day', purchase_summary.previous_purchase_date, purchase_summary.last_purchase_date)
        end as last_gap_days,
        case when purchase_summary.purchase_days >= 3
            then datediff('day', purchase_summary.first_purchase_date, purchase_summary.previous_purchase_date)
                / (purchase_summary.purchase_days - 2)
        end as prior_gap_days

    from purchase_summary
    inner join order_totals using (customer_id)

)

select * from joined
