-- int_acquisition_cost
-- Grain: one row per acquisition month and channel with customers acquired.
-- Inputs: int_customers, source_marketing_spend (config `marketing_spend`; empty when unset).
-- CAC = spend of the month and channel / customers whose first purchase was in that month
-- through that channel. Months or channels without a spend row have no CAC (null).

with customers as (

    select
        customer_id,
        date_trunc('month', first_purchase_date) as acquisition_month,
        acquisition_channel

    from int_customers

),

spend as (

    select month as acquisition_month, channel as acquisition_channel, spend
    from source_marketing_spend

),

acquired as (

    select acquisition_month, acquisition_channel, count(*) as customers_acquired
    from customers
    group by all

),

final as (

    select
        a.acquisition_month,
        a.acquisition_channel,
        a.customers_acquired,
        s.spend,
        s.spend / a.customers_acquired as cac

    from acquired as a
    left join spend as s using (acquisition_month, acquisition_channel)

)

select * from final
