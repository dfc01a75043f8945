-- timed (params: start, end)
SELECT `t1`.`sku`, SUM(`t1`.`quantity` * `t1`.`unit_price`) AS `gross_sales`, SUM(`t1`.`discount`) AS `discounts` FROM (SELECT * FROM `orders` AS `t0` WHERE `t0`.`ordered_at` >= %(start)s AND `t0`.`ordered_at` < %(end)s AND `t0`.`status` <> 'cancelled') AS `t1` GROUP BY 1

-- timeless (params: none)
SELECT `t1`.`sku`, SUM(`t1`.`quantity`) AS `stock` FROM (SELECT * FROM `product_offerings` AS `t0` WHERE `t0`.`is_enabled` <> 0) AS `t1` GROUP BY 1
