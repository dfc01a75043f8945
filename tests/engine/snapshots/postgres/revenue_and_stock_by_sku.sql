-- timed (params: start, end)
SELECT "t1"."sku", SUM(CASE WHEN (ABS("t1"."quantity") < 10000000) AND (ABS("t1"."unit_price") < 10000000) THEN CAST(CAST("t1"."quantity" AS DECIMAL(18, 2)) * CAST("t1"."unit_price" AS DECIMAL(18, 2)) AS DECIMAL(22, 2)) ELSE CAST(CAST("t1"."quantity" AS DECIMAL(38, 2)) * CAST("t1"."unit_price" AS DECIMAL(38, 2)) AS DECIMAL(22, 2)) END) FILTER(WHERE "t1"."status" <> 'cancelled') AS "gross_sales", SUM("t1"."discount") FILTER(WHERE "t1"."status" <> 'cancelled') AS "discounts" FROM (SELECT * FROM "orders" AS "t0" WHERE "t0"."ordered_at" >= %(start)s AND "t0"."ordered_at" < %(end)s) AS "t1" GROUP BY 1

-- timeless (params: none)
SELECT "t0"."sku", SUM("t0"."quantity") FILTER(WHERE "t0"."is_enabled") AS "stock" FROM "product_offerings" AS "t0" GROUP BY 1
