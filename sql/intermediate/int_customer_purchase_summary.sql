-- int_customer_purchase_summary
-- Grain: one row per cutoff and customer with a purchase day up to the cutoff. Cutoffs:
--   snapshot    - the snapshot date: every purchase day of the snapshot (the stage step keeps
--                 only orders up to the snapshot date)
--   calibration - $backtest_calibration_date: the purchase days on or before it (backtest)
-- Inputs: int_purchase_days; $snapshot_date, $backtest_calibration_date.
-- The customer's purchase days up to the cutoff, and the inputs of BG/NBD and Gamma-Gamma
-- under lifetimes' names and definitions (time unit: days; purchase days, so same-day orders
-- are one purchase), and its first, second (null for a one-time buyer: when it became a repeat
-- buyer), previous and last purchase day:
--   frequency      = repeat purchase days (purchase days - 1)
--   recency        = days from the first to the last purchase day
--   T              = days from the first purchase day to the cutoff
--   monetary_value = mean value of the repeat purchase days (0 without repeats)
-- This is lifetimes' summary_data_from_transaction_data.

with purchase_days as (

    select * from int_purchase_days

),

cutoffs as (

    select 'snapshot' as cutoff, $snapshot_date::date as cutoff_date
    union all
    select 'calibration' as cutoff, $backtest_calibration_date::date as cutoff_date

),

history as (

    select
        cutoffs.cutoff,
        cutoffs.cutoff_date,
        purchase_days.*

    from cutoffs
    inner join purchase_days
        on cutoffs.cutoff = 'snapshot'
        or purchase_days.purchase_date <= cutoffs.cutoff_date

),

bounds as (

    -- the cutoff's purchase days of each customer: how many, the first and last, the value
    -- of the repeat days (a customer has one row a day, so the first day's value is one value)
    select
        history.cutoff,
        history.cutoff_date,
        history.customer_id,
        count(*) as purchase_days,
        min(history.purchase_date) as first_purchase_date,
        max(history.purchase_date) as last_purchase_date,
        sum(history.purchase_value) - arg_min(history.purchase_value, history.purchase_date) as repeat_value

    from history
    group by history.cutoff, history.cutoff_date, history.customer_id

),

neighbours as (

    -- a repeat buyer's second and next-to-last purchase days, as plain aggregates over the
    -- days after the first and before the last: a top-2 list aggregate (`min(date, 2)`)
    -- cannot spill, and ran out of its memory budget at 100M orders
    select
        history.cutoff,
        history.customer_id,
        min(history.purchase_date) filter (
            where history.purchase_date > bounds.first_purchase_date
        ) as second_purchase_date,
        max(history.purchase_date) filter (
            where history.purchase_date < bounds.last_purchase_date
        ) as previous_purchase_date

    from history
    inner join bounds
        on history.cutoff = bounds.cutoff
        and history.customer_id = bounds.customer_id
    where bounds.purchase_days > 1
    group by history.cutoff, history.customer_id

),

per_customer as (

    select
        bounds.cutoff,
        bounds.cutoff_date,
        bounds.customer_id,
        bounds.purchase_days,
        bounds.first_purchase_date,
        bounds.last_purchase_date,
        neighbours.previous_purchase_date,
        neighbours.second_purchase_date,
        bounds.repeat_value

    from bounds
    left join neighbours
        on bounds.cutoff = neighbours.cutoff
        and bounds.customer_id = neighbours.customer_id

),

final as (

    select
        per_customer.*,
        per_customer.purchase_days - 1 as frequency,
        datediff('day', per_customer.first_purchase_date, per_customer.last_purchase_date) as recency,
        datediff('day', per_customer.first_purchase_date, per_customer.cutoff_date) as T,
        case when per_customer.purchase_days > 1
            then per_customer.repeat_value / (per_customer.purchase_days - 1)
            else 0
        end as monetary_value

    from per_customer

)

select * from final
