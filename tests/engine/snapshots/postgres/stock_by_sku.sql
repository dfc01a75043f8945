-- timeless (params: none)
SELECT "t0"."sku", SUM("t0"."quantity") FILTER(WHERE "t0"."is_enabled") AS "stock" FROM "product_offerings" AS "t0" GROUP BY 1
