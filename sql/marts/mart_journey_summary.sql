-- mart_journey_summary  (published as journey_summary)
-- Grain: one row per snapshot.
-- Inputs: mart_customer_journey, int_customer_journey_stage; $snapshot_date,
--         $journey_repeat_window_days, $journey_high_value_window_days.
-- The journey funnel: how many customers are one_time, repeat and high_value; how many
-- convert within the configured windows; and who moved since the previous snapshot D - 1.
--   repeat_conversion_rate      of the customers whose first purchase is at least
--                               journey.repeat_window_days old, the share whose second purchase
--                               came within that many days of the first
--   high_value_conversion_rate  of the customers who became repeat at least
--                               journey.high_value_window_days ago, the share who became
--                               high_value within that many days of becoming repeat
--   *_since_previous            customers whose first purchase, second purchase or high-value
--                               date is D (the day after the previous snapshot D - 1). The
--                               stages of D - 1 are read off those dates (against this
--                               snapshot's high-value bar), so the row depends on D's orders
--                               alone, like segment_transitions.
-- Economics: of the customers with a CAC, the share whose first order lost money after it and
-- the share who have not paid it back yet.

with customer_journey as (

    select * from mart_customer_journey

),

journey_stages as (

    select * from int_customer_journey_stage

),

bar as (

    select any_value(journey_stages.high_value_revenue_bar) as high_value_revenue_bar

    from journey_stages

),

funnel as (

    select
        count(*) as customers,
        count(*) filter (where customer_journey.journey_stage = 'one_time') as one_time_customers,
        count(*) filter (where customer_journey.journey_stage = 'repeat') as repeat_customers,
        count(*) filter (where customer_journey.journey_stage = 'high_value') as high_value_customers,
        count(*) filter (where customer_journey.activity_state = 'active') as active_customers,
        count(*) filter (where customer_journey.activity_state = 'at_risk') as at_risk_customers,
        count(*) filter (where customer_journey.activity_state = 'lapsed') as lapsed_customers,
        median(customer_journey.days_to_second_purchase) as median_days_to_second_purchase,

        count(*) filter (where customer_journey.first_order_date
            <= $snapshot_date::date - $journey_repeat_window_days::integer) as repeat_eligible_customers,
        count(*) filter (where customer_journey.first_order_date
            <= $snapshot_date::date - $journey_repeat_window_days::integer
            and customer_journey.days_to_second_purchase <= $journey_repeat_window_days::integer)
            as repeat_converted_customers,
        count(*) filter (where customer_journey.became_repeat_on
            <= $snapshot_date::date - $journey_high_value_window_days::integer) as high_value_eligible_customers,
        count(*) filter (where customer_journey.became_repeat_on
            <= $snapshot_date::date - $journey_high_value_window_days::integer
            and datediff('day', customer_journey.became_repeat_on, customer_journey.became_high_value_on)
                <= $journey_high_value_window_days::integer)
            as high_value_converted_customers,

        count(*) filter (where customer_journey.first_order_date < $snapshot_date::date
            and coalesce(customer_journey.became_repeat_on >= $snapshot_date::date, true))
            as previous_one_time_customers,
        count(*) filter (where customer_journey.became_repeat_on < $snapshot_date::date
            and coalesce(customer_journey.became_high_value_on >= $snapshot_date::date, true))
            as previous_repeat_customers,
        count(*) filter (where customer_journey.became_high_value_on < $snapshot_date::date)
            as previous_high_value_customers,
        count(*) filter (where customer_journey.first_order_date = $snapshot_date::date) as new_customers_since_previous,
        count(*) filter (where customer_journey.became_repeat_on = $snapshot_date::date) as became_repeat_since_previous,
        count(*) filter (where customer_journey.became_high_value_on = $snapshot_date::date) as became_high_value_since_previous,

        count(customer_journey.cac) as customers_with_cac,
        count(*) filter (where customer_journey.first_order_profit_after_cac < 0) as first_order_loss_customers,
        count(*) filter (where not customer_journey.cac_paid_back) as cac_unpaid_customers

    from customer_journey

),

final as (

    select
        funnel.customers,
        funnel.one_time_customers,
        funnel.repeat_customers,
        funnel.high_value_customers,
        funnel.active_customers,
        funnel.at_risk_customers,
        funnel.lapsed_customers,
        bar.high_value_revenue_bar,
        funnel.median_days_to_second_purchase::double as median_days_to_second_purchase,
        $journey_repeat_window_days::integer as repeat_window_days,
        funnel.repeat_eligible_customers,
        funnel.repeat_converted_customers / nullif(funnel.repeat_eligible_customers, 0) as repeat_conversion_rate,
        $journey_high_value_window_days::integer as high_value_window_days,
        funnel.high_value_eligible_customers,
        funnel.high_value_converted_customers / nullif(funnel.high_value_eligible_customers, 0)
            as high_value_conversion_rate,
        $snapshot_date::date - 1 as previous_snapshot_date,
        funnel.previous_one_time_customers,
        funnel.previous_repeat_customers,
        funnel.previous_high_value_customers,
        funnel.new_customers_since_previous,
        funnel.became_repeat_since_previous,
        funnel.became_high_value_since_previous,
        funnel.customers_with_cac,
        funnel.first_order_loss_customers / nullif(funnel.customers_with_cac, 0) as first_order_loss_share,
        funnel.cac_unpaid_customers / nullif(funnel.customers_with_cac, 0) as cac_unpaid_share

    from funnel
    cross join bar

)

select * from final
