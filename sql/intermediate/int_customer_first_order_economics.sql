-- int_customer_first_order_economics
-- Grain: one row per customer with at least one purchase order.
-- Inputs: int_customer_order_sequence, int_customer_acquisition.
-- What acquiring the customer cost, against what their orders have earned since:
--   first_order_profit            order_profit of the first purchase order (int_customer_order_sequence)
--   first_order_profit_after_cac  first_order_profit - cac: negative = the first order lost
--                                 money once the acquisition cost is counted; null without a CAC
--   cac_paid_back                 the customer's profit to date reached their CAC (null without a CAC)
--   cac_payback_orders            purchase orders up to the order whose profit to date first
--                                 reached the CAC (1 = the first order paid it back); null
--                                 while it is not paid back
--   cac_payback_days              days from the first purchase to that order

with sequence as (

    select * from int_customer_order_sequence

),

acquisition as (

    select * from int_customer_acquisition

),

first_orders as (

    select
        sequence.customer_id,
        sequence.order_date as first_order_date,
        sequence.order_profit as first_order_profit

    from sequence
    where sequence.purchase_number = 1

),

paid_back as (

    select
        sequence.customer_id,
        arg_min(sequence.purchases_to_date, (sequence.order_ts, sequence.order_id)) as cac_payback_orders,
        arg_min(sequence.order_date, (sequence.order_ts, sequence.order_id)) as cac_payback_date

    from sequence
    inner join acquisition using (customer_id)
    where acquisition.cac is not null
        and sequence.profit_to_date >= acquisition.cac
    group by sequence.customer_id

),

final as (

    select
        first_orders.customer_id,
        acquisition.cac,
        first_orders.first_order_profit,
        first_orders.first_order_profit - acquisition.cac as first_order_profit_after_cac,
        case when acquisition.cac is not null then paid_back.customer_id is not null end as cac_paid_back,
        paid_back.cac_payback_orders,
        datediff('day', first_orders.first_order_date, paid_back.cac_payback_date) as cac_payback_days

    from first_orders
    inner join acquisition using (customer_id)
    left join paid_back using (customer_id)

)

select * from final
