-- int_model_inputs
-- Grain: one row per customer with at least one purchase.
-- Inputs: int_purchase_days; $snapshot_date.
-- The inputs of BG/NBD and Gamma-Gamma under lifetimes' names and definitions (time unit:
-- days; purchase days, so same-day orders are one purchase): frequency = repeat purchase
-- days, recency = days from the first to the last purchase day, T = days from the first
-- purchase day to the snapshot date, monetary_value = mean value of the repeat purchase days
-- (0 without repeats). This is lifetimes' summary_data_from_transaction_data.

with purchase_days as (

    select * from int_purchase_days

),

per_customer as (

    select
        customer_id,
        count(*) as purchase_days,
        min(purchase_date) as first_purchase_date,
        max(purchase_date) as last_purchase_date,
        sum(purchase_value) - arg_min(purchase_value, purchase_date) as repeat_value

    from purchase_days
    group by customer_id

),

final as (

    select
        customer_id,
        purchase_days - 1 as frequency,
        datediff('day', first_purchase_date, last_purchase_date) as recency,
        datediff('day', first_purchase_date, $snapshot_date::date) as T,
        case when purchase_days > 1 then repeat_value / (purchase_days - 1) else 0 end as monetary_value

    from per_customer

)

select * from final
