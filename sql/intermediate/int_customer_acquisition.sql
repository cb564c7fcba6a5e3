-- int_customer_acquisition
-- Grain: one row per customer with at least one purchase.
-- Inputs: int_customers, int_acquisition_cost, int_customer_formula_clv; $ltv_cac_break_even,
--         $ltv_cac_benchmark, $ltv_cac_generous.
-- A customer is acquired in the month of their first purchase through the channel of their
-- first purchase order; cac = the CAC of that month and channel (null without a spend row).
--   ltv_cac_ratio  = clv_retention / cac (when cac > 0)
--   ltv_cac_status = the standard reading of the ratio against the 3:1 benchmark
--                    (clv.ltv_cac_thresholds): losing_money under break_even (1),
--                    below_benchmark under benchmark (3), healthy up to generous (5),
--                    room_to_spend above it; null without a CAC
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

ratios as (

    select
        acquired.*,
        case when acquired.cac > 0 then formula_clv.clv_retention / acquired.cac end as ltv_cac_ratio,
        case when acquired.cac is not null and formula_clv.annual_margin > 0
            then acquired.cac / (formula_clv.annual_margin / 12)
        end as payback_months

    from acquired
    inner join formula_clv using (customer_id)

),

final as (

    select
        ratios.*,
        case
            when ratios.ltv_cac_ratio is null then null
            when ratios.ltv_cac_ratio < $ltv_cac_break_even then 'losing_money'
            when ratios.ltv_cac_ratio < $ltv_cac_benchmark then 'below_benchmark'
            when ratios.ltv_cac_ratio <= $ltv_cac_generous then 'healthy'
            else 'room_to_spend'
        end as ltv_cac_status

    from ratios

)

select * from final
