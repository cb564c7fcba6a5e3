-- int_customer_acquisition
-- Grain: one row per customer with at least one purchase.
-- Inputs: int_customers, int_acquisition_cost, int_customer_formula_clv.
-- A customer is acquired in the month of their first purchase through the channel of their
-- first purchase order; cac = the CAC of that month and channel (null without a spend row).
--   ltv_cac_ratio  = clv_retention / cac (when cac > 0)
--   payback_months = cac / monthly margin (annual margin / 12; when the margin is positive)

with customers as (

    select * from int_customers

),

acquisition_cost as (

    select * from int_acquisition_cost

),

formula_clv as (

    select * from int_customer_formula_clv

),

acquired as (

    select
        customers.customer_id,
        customers.acquisition_channel,
        customers.first_purchase_month as acquisition_month,
        acquisition_cost.cac

    from customers
    left join acquisition_cost
        on acquisition_cost.acquisition_month = customers.first_purchase_month
        and acquisition_cost.acquisition_channel is not distinct from customers.acquisition_channel

),

final as (

    select
        acquired.*,
        case when acquired.cac > 0 then formula_clv.clv_retention / acquired.cac end as ltv_cac_ratio,
        case when acquired.cac is not null and formula_clv.annual_margin > 0
            then acquired.cac / (formula_clv.annual_margin / 12)
        end as payback_months

    from acquired
    inner join formula_clv using (customer_id)

)

select * from final
