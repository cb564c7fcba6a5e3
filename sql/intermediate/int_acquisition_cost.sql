-- int_acquisition_cost
-- Grain: one row per acquisition month and channel with customers acquired.
-- Inputs: int_customers, source_marketing_spend (config `marketing_spend`; empty when unset).
-- CAC = spend of the month and channel / customers whose first purchase was in that month
-- through that channel. Months or channels without a spend row have no CAC (null).

with customers as (

    select
        int_customers.customer_id,
        int_customers.first_purchase_month as acquisition_month,
        int_customers.acquisition_channel

    from int_customers

),

spend as (

    select
        source_marketing_spend.month as acquisition_month,
        source_marketing_spend.channel as acquisition_channel,
        source_marketing_spend.spend

    from source_marketing_spend

),

acquired as (

    select
        customers.acquisition_month,
        customers.acquisition_channel,
        count(*) as customers_acquired

    from customers
    group by customers.acquisition_month, customers.acquisition_channel

),

final as (

    select
        acquired.acquisition_month,
        acquired.acquisition_channel,
        acquired.customers_acquired,
        spend.spend,
        spend.spend / acquired.customers_acquired as cac

    from acquired
    left join spend using (acquisition_month, acquisition_channel)

)

select * from final
