-- timeless (params: none)
SELECT `t0`.`sku`, SUM(CASE WHEN `t0`.`is_enabled` <> 0 THEN `t0`.`quantity` ELSE NULL END) AS `stock` FROM `product_offerings` AS `t0` GROUP BY 1
