"""Generate the `retail` example's seeded source data, and serve its customers API.

A UK retailer (stores, a website, an app, click & collect, phone orders, a marketplace) whose data
lives in five systems of four kinds, each written here as that system would hand it over:

  data/sales/sales_YYYY-MM.csv            till and web-shop sale lines, one file per month (fact_sales)
  data/interactions/events_YYYY-MM.csv    web/app/phone interaction events (fact_interactions)
  data/stock/stock_YYYY-MM.csv            the stock system's end-of-day count per product (fact_stock)
  data/products.xlsx                      the buying team's product catalogue workbook (dim_products)
  data/retail.db                          the store-operations SQLite database (dim_stores, dim_channels)
  data/customers.json                     the CRM's customers, served by `serve_customers` (dim_customers)

Every source has a few per cent of deliberately dirty rows (bad dates, negative quantities, unknown
ids, duplicated sales, blank names, bad e-mails, typos in categorical values, a truncated CSV line)
that the ingestion rejects into `_tally_rejects`, and messy-but-valid values it cleans ("£1,250.00"
prices, padded text). Everything is seeded: the same `rows` and `seed` give the same data.
No change time (a source's cursor) is later than EXPORTED_AT, when the extracts were taken.

    python examples/retail/generate.py DIR --rows 200000     # write the sources into DIR
    python examples/retail/generate.py DIR --serve 8765      # serve DIR's customers API
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import re
import sqlite3
import sys
import threading
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ZONE = ZoneInfo("Europe/London")
START, END = date(2024, 1, 1), date(2026, 1, 1)      # two trading years, [START, END) in London time
EXPORTED_AT = datetime(2026, 1, 2, 6, 0)              # when the systems' extracts were taken
DAY = 86_400
EPOCH = datetime(1970, 1, 1)                          # wall seconds count from here

SALE_ID_BASE, TRANSACTION_ID_BASE, INTERACTION_ID_BASE, PRODUCT_ID_BASE = 1_000_000, 500_000, 7_000_000, 10_000
UNKNOWN_PRODUCT_IDS = (90_001, 99_999)                # ids the catalogue never had (keying errors)
ONLINE_STORE = 50                                     # the fulfilment centre that ships online orders

SALES_COLUMNS = ["sale_id", "transaction_id", "sold_at", "store_id", "channel_id", "customer_id", "product_id",
                 "quantity", "unit_price", "discount", "total_amount", "updated_at"]
INTERACTION_COLUMNS = ["interaction_id", "customer_id", "channel_id", "product_id", "interaction_type",
                       "interaction_at", "duration_seconds", "status"]
STOCK_COLUMNS = ["stock_date", "product_id", "closing_stock", "counted_at"]
PRODUCT_COLUMNS = ["product_id", "sku", "product_name", "category", "subcategory", "brand", "supplier_id",
                   "unit_cost", "unit_price", "stock_level", "reorder_level", "active", "created_at", "updated_at"]

# -- the catalogue ------------------------------------------------------------------------------------
# category: share of sales, cost as a share of price, sales multiplier per month (Jan..Dec), brands,
# and per subcategory its products as "name base-price" separated by "|"
CATEGORIES = {
    "Grocery": (0.24, 0.72, [1.0, 0.95, 1.0, 1.0, 1.0, 1.0, 1.05, 1.05, 1.0, 1.0, 1.05, 1.35],
                ["Harvest Lane", "Oakridge Farm", "Bramble & Co", "Northfield"],
                {"Fresh": "Strawberries 2.5|Salad Leaves 1.2|Free Range Eggs 2.4|Mature Cheddar 3.5",
                 "Bakery": "Sourdough Loaf 2.8|Croissants 2.2|Seeded Rolls 1.6|Crumpets 1.1",
                 "Pantry": "Olive Oil 6.5|Basmati Rice 3.2|Penne Pasta 1.3|Peanut Butter 2.9",
                 "Drinks": "Orange Juice 2.1|Sparkling Water 0.9|Ground Coffee 4.8|Breakfast Tea 3.4"}),
    "Home": (0.13, 0.52, [1.2, 0.9, 0.95, 1.0, 1.0, 0.95, 0.9, 0.9, 1.0, 1.05, 1.15, 1.25],
             ["Hearth & Home", "Linden", "Copperleaf", "Nordvik"],
             {"Kitchen": "Frying Pan 28|Knife Block 55|Mixing Bowls 18|Kettle 35",
              "Bedding": "Duvet Cover 32|Pillow Pair 20|Fitted Sheet 16|Wool Throw 45",
              "Decor": "Table Lamp 38|Scented Candle 12|Wall Mirror 65|Photo Frame 9",
              "Cleaning": "Cordless Vacuum 149|Microfibre Cloths 5|Steam Mop 59|Laundry Basket 14"}),
    "Electronics": (0.09, 0.80, [0.9, 0.8, 0.85, 0.85, 0.9, 0.9, 0.9, 0.95, 0.95, 1.0, 1.6, 1.9],
                    ["Voltra", "Pixelon", "Sonique", "Arcbyte"],
                    {"Audio": "Wireless Earbuds 79|Bluetooth Speaker 49|Soundbar 199|Headphones 129",
                     "Phones": "Smartphone 449|Phone Case 15|Fast Charger 19|Power Bank 29",
                     "Computing": "Laptop 649|Wireless Mouse 22|Keyboard 39|Monitor 179",
                     "Gaming": "Games Console 399|Controller 55|Gaming Headset 69|Racing Wheel 249"}),
    "Clothing": (0.18, 0.45, [1.1, 0.85, 1.0, 1.05, 1.05, 1.0, 1.0, 1.05, 1.1, 1.05, 1.1, 1.25],
                 ["Thread & Thistle", "Marlow", "Kestrel", "Urban Fern"],
                 {"Womenswear": "Wrap Dress 45|Knit Jumper 39|Wool Coat 129|Linen Shirt 32",
                  "Menswear": "Oxford Shirt 35|Chinos 40|Quilted Jacket 89|Crew Jumper 36",
                  "Kidswear": "School Polo 6|Rain Jacket 25|Pyjama Set 14|Hoodie 16",
                  "Footwear": "Trainers 65|Chelsea Boots 85|Sandals 28|Wellies 22"}),
    "Beauty": (0.10, 0.45, [0.9, 0.95, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.6],
               ["Lumiere", "Petal & Pine", "Aurora Skin", "Blackwood"],
               {"Skincare": "Moisturiser 18|Cleanser 12|Serum 24|Sun Cream 9",
                "Fragrance": "Eau de Parfum 55|Body Mist 14|Aftershave 42|Gift Set 30",
                "Haircare": "Shampoo 6|Conditioner 6|Hair Dryer 45|Styling Cream 8",
                "Makeup": "Mascara 11|Lipstick 10|Foundation 16|Eyeshadow Palette 22"}),
    "Toys": (0.07, 0.58, [0.6, 0.6, 0.7, 0.8, 0.8, 0.8, 0.9, 0.9, 0.9, 1.1, 1.8, 2.6],
             ["Tumbletop", "Brightbox", "Wonderkin", "Little Oak"],
             {"Games": "Board Game 25|Jigsaw Puzzle 12|Card Game 8|Trivia Game 20",
              "Outdoor Toys": "Scooter 45|Paddling Pool 30|Kite 12|Water Blaster 10",
              "Building": "Brick Set 35|Marble Run 28|Magnetic Tiles 40|Robot Kit 60",
              "Dolls": "Fashion Doll 18|Soft Toy 14|Doll House 75|Action Figure 15"}),
    "Garden": (0.07, 0.60, [0.4, 0.5, 0.9, 1.6, 1.9, 1.8, 1.5, 1.1, 0.8, 0.6, 0.5, 0.6],
               ["Greenacre", "Fernhill", "Potting Shed", "Sunhaven"],
               {"Plants": "Lavender Pot 8|Rose Bush 15|Herb Trio 10|Olive Tree 60",
                "Tools": "Pruning Shears 18|Garden Hose 25|Lawn Mower 189|Trowel 7",
                "Furniture": "Bistro Set 99|Sun Lounger 75|Parasol 45|Garden Bench 149",
                "BBQ": "Charcoal BBQ 59|Gas BBQ 299|BBQ Tools 20|Charcoal Bag 9"}),
    "Sports": (0.12, 0.60, [1.5, 1.1, 1.0, 1.05, 1.1, 1.15, 1.15, 1.05, 0.9, 0.85, 0.9, 1.1],
               ["Peakline", "Stride", "Summit Gear", "Velocita"],
               {"Fitness": "Yoga Mat 20|Dumbbell Set 45|Resistance Bands 12|Exercise Bike 299",
                "Cycling": "Road Bike 699|Bike Helmet 45|Bike Lights 25|Cycling Jersey 35",
                "Running": "Running Shoes 85|Running Vest 20|Sports Watch 149|Water Bottle 8",
                "Camping": "Two-Person Tent 120|Sleeping Bag 50|Camping Stove 35|Head Torch 15"}),
}
CATEGORY_CODES = {name: name[:3].upper() for name in CATEGORIES}
VARIANTS = [("", 1.0), ("Classic ", 1.0), ("Essential ", 0.75), ("Premium ", 1.45), ("Eco ", 1.1), ("Pro ", 1.6)]
PRICE_RISE = 1.04                                     # list prices go up 4% each January

# -- stores and channels (the store-operations database) ---------------------------------------------
# id, name, type, city, region, size in m², opened, closed (no longer trading), postcode
STORES = [
    (1, "London Oxford Street", "flagship", "London", "London", 4200, "2008-04-12", None, "W1C 1DX"),
    (2, "London Westfield Stratford", "shopping_centre", "London", "London", 2600, "2012-07-20", None, "E20 1EJ"),
    (3, "Manchester Arndale", "shopping_centre", "Manchester", "North West", 2900, "2010-03-05", None, "M4 3AQ"),
    (4, "Birmingham Bullring", "shopping_centre", "Birmingham", "West Midlands", 3100, "2009-09-18", None, "B5 4BU"),
    (5, "Leeds Briggate", "high_street", "Leeds", "Yorkshire and the Humber", 1800, "2011-05-14", None, "LS1 6HD"),
    (6, "Glasgow Buchanan Street", "high_street", "Glasgow", "Scotland", 2200, "2013-10-02", None, "G1 3HL"),
    (7, "Edinburgh Princes Street", "high_street", "Edinburgh", "Scotland", 1900, "2014-06-21", None, "EH2 2AN"),
    (8, "Bristol Cabot Circus", "shopping_centre", "Bristol", "South West", 2100, "2012-11-09", None, "BS1 3BX"),
    (9, "Liverpool ONE", "shopping_centre", "Liverpool", "North West", 2000, "2015-03-27", None, "L1 8JQ"),
    (10, "Newcastle Eldon Square", "shopping_centre", "Newcastle upon Tyne", "North East", 1700, "2016-08-12", None,
     "NE1 7JB"),
    (11, "Cardiff St David's", "shopping_centre", "Cardiff", "Wales", 1600, "2016-04-30", None, "CF10 2EF"),
    (12, "Belfast Victoria Square", "shopping_centre", "Belfast", "Northern Ireland", 1500, "2017-09-15", None,
     "BT1 4QG"),
    (13, "Sheffield Meadowhall", "retail_park", "Sheffield", "Yorkshire and the Humber", 2300, "2014-02-08", None,
     "S9 1EP"),
    (14, "Nottingham Victoria Centre", "shopping_centre", "Nottingham", "East Midlands", 1400, "2018-05-19", None,
     "NG1 3QN"),
    (15, "Leicester Highcross", "shopping_centre", "Leicester", "East Midlands", 1300, "2018-10-06", None, "LE1 4AN"),
    (16, "Southampton WestQuay", "shopping_centre", "Southampton", "South East", 1500, "2017-04-01", None, "SO15 1QF"),
    (17, "Brighton Churchill Square", "high_street", "Brighton", "South East", 1200, "2019-03-16", None, "BN1 2RG"),
    (18, "Oxford Westgate", "shopping_centre", "Oxford", "South East", 1100, "2019-10-24", None, "OX1 1TR"),
    (19, "Cambridge Grand Arcade", "shopping_centre", "Cambridge", "East of England", 1000, "2020-08-01", None,
     "CB2 3BJ"),
    (20, "York Coppergate", "high_street", "York", "Yorkshire and the Humber", 900, "2021-04-12", None, "YO1 9WA"),
    (21, "Norwich Chapelfield", "shopping_centre", "Norwich", "East of England", 950, "2021-11-05", None, "NR2 1SH"),
    (22, "Exeter Princesshay", "high_street", "Exeter", "South West", 850, "2022-06-18", None, "EX1 1GE"),
    (23, "Milton Keynes centre:mk", "retail_park", "Milton Keynes", "South East", 2400, "2024-06-14", None,
     "MK9 3ES"),
    (24, "Aberdeen Union Square", "shopping_centre", "Aberdeen", "Scotland", 1000, "2025-03-21", None, "AB11 5RG"),
    (25, "Bath SouthGate", "high_street", "Bath", "South West", 800, "2016-05-01", "2023-12-30", "BA1 1TG"),
    (ONLINE_STORE, "Online Fulfilment Centre", "online", "Milton Keynes", "National", 18000, "2015-01-05", None,
     "MK1 1SS"),
]
# id, name, type, description
CHANNELS = [
    (1, "In-store", "physical", "Till sales in our shops"),
    (2, "Website", "digital", "Orders on the website, delivered from the fulfilment centre"),
    (3, "Mobile app", "digital", "Orders in the iOS and Android apps"),
    (4, "Click & Collect", "digital", "Ordered online, collected in a shop"),
    (5, "Phone", "assisted", "Orders taken by the contact centre"),
    (6, "Marketplace", "digital", "Orders through third-party marketplaces"),
]
IN_STORE, WEBSITE, APP, CLICK_COLLECT, PHONE, MARKETPLACE = 1, 2, 3, 4, 5, 6
ONLINE_CHANNELS = np.array([WEBSITE, APP, CLICK_COLLECT, PHONE, MARKETPLACE])
ONLINE_SHARE_FIRST = np.array([0.48, 0.24, 0.14, 0.06, 0.08])   # the app gains on the website over time
ONLINE_SHARE_LAST = np.array([0.42, 0.33, 0.13, 0.03, 0.09])
STORE_SHARE = 0.58                                               # of transactions, made in a shop

# -- the rhythm of trade ------------------------------------------------------------------------------
STORE_WEEKDAY = np.array([0.85, 0.85, 0.90, 0.95, 1.10, 1.45, 0.90])     # Monday first; Saturday peaks
ONLINE_WEEKDAY = np.array([1.10, 1.00, 0.98, 0.95, 0.90, 0.85, 1.15])    # Sunday evening browsing
MONTH = np.array([0.85, 0.80, 0.90, 0.95, 1.00, 1.00, 1.05, 1.00, 0.92, 0.98, 1.15, 1.45])
GROWTH = {"store": 0.05, "online": 0.16}                                  # per year
STORE_HOURS = np.zeros(24)
STORE_HOURS[8:21] = [0.3, 0.7, 1.0, 1.3, 1.6, 1.5, 1.2, 1.2, 1.3, 1.5, 1.2, 0.7, 0.3]
SUNDAY_HOURS = np.zeros(24)                                               # six hours of Sunday trading
SUNDAY_HOURS[10:16] = [1.0, 1.3, 1.5, 1.4, 1.2, 0.9]
ONLINE_HOURS = np.array([0.6, 0, 0, 0, 0, 0, 0.3, 0.6, 0.9, 1.0, 1.1, 1.1, 1.2, 1.1, 1.1, 1.1, 1.1, 1.2,
                         1.3, 1.6, 1.9, 2.0, 1.6, 1.0])   # nothing 01:00-05:59: no clock-change ambiguity
STORE_LINES = [0.50, 0.26, 0.13, 0.07, 0.04]      # lines per transaction: 1..5
ONLINE_LINES = [0.60, 0.24, 0.10, 0.06]
QUANTITY = [0.80, 0.13, 0.04, 0.02, 0.01]         # units per line: 1..5
GROCERY_QUANTITY = [0.55, 0.25, 0.10, 0.05, 0.05]
ANONYMOUS = 0.38                                  # in-store sales without a loyalty card: no customer

# -- customers ------------------------------------------------------------------------------------------
FIRST_NAMES = ("Oliver Amelia George Isla Harry Ava Noah Mia Jack Ivy Leo Freya Arthur Lily Muhammad Emily "
               "Oscar Sophia Charlie Grace Jacob Poppy Thomas Evie Alfie Ella Finley Rosie Archie Florence "
               "Henry Sienna Theo Willow Joshua Ruby James Daisy William Chloe Aisha Priya Rohan Mei Liam Niamh "
               "Callum Eilidh Rhys Seren").split()
LAST_NAMES = ("Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson Thompson "
              "Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson Wood Turner Martin "
              "Cooper Hill Ward Morris Moore Clark Lee King Baker Harrison Morgan Allen James Scott Phillips "
              "Watson Davis Parker Price Bennett Young Griffiths Khan Singh Murphy Campbell Kelly").split()
EMAIL_DOMAINS = ["example.com", "example.co.uk", "mail.example.net", "example.org"]
SEGMENTS = ["Consumer", "Loyalty", "Student", "Business"]
SEGMENT_SHARES = [0.55, 0.30, 0.08, 0.07]

# -- interactions ---------------------------------------------------------------------------------------
INTERACTION_TYPES = ["view", "search", "cart_add", "wishlist", "checkout", "review", "support_chat", "support_call"]
DIGITAL_TYPE_SHARES = [0.58, 0.16, 0.12, 0.04, 0.05, 0.02, 0.03, 0.0]
TYPE_SECONDS = [40, 20, 6, 3, 95, 150, 420, 390]  # median duration
WITH_PRODUCT = np.array([True, False, True, True, True, True, False, False])
STATUSES = ["completed", "abandoned", "bounced", "failed"]

# -- dirt: the share of each source's rows spoiled in each way ------------------------------------------
SALES_DIRT = {"bad_date": 0.004, "negative_quantity": 0.004, "unknown_product": 0.003, "duplicate": 0.006}
MONEY_AS_TEXT = 0.02        # "£1,250.00": cleaned and loaded, not rejected
INTERACTION_DIRT = {"bad_timestamp": 0.003, "negative_duration": 0.003, "unknown_type": 0.003,
                    "unknown_customer": 0.002}
CUSTOMER_DIRT = {"blank_name": 0.004, "bad_email": 0.004, "bad_date": 0.003, "unknown_segment": 0.003}
BAD_DATES = ["2024-02-30 13:05:00", "31/12/2024 18:20", "n/a", "2025-13-01 10:00:00", "00/00/0000 00:00"]
BAD_ISO = ["2024-02-30T10:00:00Z", "yesterday", "2025-06-31T09:15:00Z", "13/05/2024"]


# ==========================================================================================================
# entry point
# ==========================================================================================================

def prepare(project_dir: Path, rows: int, seed: int = 42) -> dict[str, int]:
    """Write the example's sources into `project_dir/data` from `rows` sale lines; return what was written.

    Keys: each table's rows written (dirty ones included), and `table.kind` for each kind of
    deliberately dirty row (`fact_sales.duplicate`: older versions of a sale written again later),
    plus `fact_sales.money_text`: prices written as "£1,250.00" text, which load cleaned.
    """
    if rows < 100:
        raise ValueError(f"rows must be at least 100, not {rows}")
    rng = np.random.default_rng(seed)
    data = Path(project_dir) / "data"
    for folder in ("sales", "interactions", "stock"):
        (data / folder).mkdir(parents=True, exist_ok=True)
        for old in (data / folder).glob("*.csv"):
            old.unlink()
    counts: dict[str, int] = {}
    catalog = _Catalog(rows, rng)
    days = _Calendar(rng)
    customers = _signups(max(300, rows // 8), days, rng)
    sales = _sales(rows, catalog, customers, days, rng)
    events = _interactions(max(200, rows // 2), catalog, customers, days, rng)
    counts.update(_write_sales(data / "sales", sales, rng))
    counts.update(_write_interactions(data / "interactions", events, customers, rng))
    stock = _stock(catalog, sales, days, rng)
    counts.update(_write_stock(data / "stock", stock, catalog, days))
    counts.update(_write_products(data / "products.xlsx", catalog, stock, rng))
    counts.update(_write_database(data / "retail.db", rng))
    active = np.zeros(len(customers.signup) + 1, bool)
    active[sales.customer[sales.customer > 0]] = True
    active[events.customer] = True
    first = _first_purchases(customers, sales, rng)
    counts.update(_write_customers(data / "customers.json", customers, first, active, rng))
    return counts


# ==========================================================================================================
# time
# ==========================================================================================================

def _easter(year: int) -> date:
    """Easter Sunday (the Gregorian computus)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month = (h + ell - 7 * m + 114) // 31
    return date(year, month, (h + ell - 7 * m + 114) % 31 + 1)


def _black_friday(year: int) -> date:
    first = date(year, 11, 1)
    thursday = first + timedelta(days=(3 - first.weekday()) % 7 + 21)
    return thursday + timedelta(days=1)


class _Calendar:
    """The trading days in [START, END): their weights for shops and online, and promotions."""

    def __init__(self, rng: np.random.Generator):
        self.days = np.arange(np.datetime64(START), np.datetime64(END))
        n = self.days.astype(np.int64)
        self.index0 = int(n[0])
        self.weekday = (n + 3) % 7                              # 1970-01-01 was a Thursday
        self.month = self.days.astype("datetime64[M]").astype(np.int64) % 12
        self.mday = (self.days - self.days.astype("datetime64[M]")).astype(np.int64) + 1
        self.year = self.days.astype("datetime64[Y]").astype(np.int64) + 1970
        years = (n - n[0]) / 365.25
        store = STORE_WEEKDAY[self.weekday] * MONTH[self.month] * np.exp(GROWTH["store"] * years)
        online = ONLINE_WEEKDAY[self.weekday] * MONTH[self.month] * np.exp(GROWTH["online"] * years)
        store[(self.month == 11) & (self.mday <= 23)] *= 1 + 0.03 * self.mday[(self.month == 11) & (self.mday <= 23)]
        promo = np.full(len(n), 0.05)                           # share of lines discounted that day
        self.sale_event = np.zeros(len(n), bool)
        for year in range(START.year, END.year):
            bf = _black_friday(year)
            easter = _easter(year)
            special = {date(year, 1, 1): (0.35, 0.9), date(year, 12, 24): (1.5, 0.8), date(year, 12, 25): (0.0, 0.35),
                       date(year, 12, 26): (1.9, 1.7), date(year, 12, 27): (1.5, 1.3), bf: (2.3, 3.2),
                       bf + timedelta(days=1): (1.5, 1.8), bf + timedelta(days=2): (1.1, 1.5),
                       bf + timedelta(days=3): (1.0, 2.4),                      # Cyber Monday
                       easter: (0.0, 1.1), easter - timedelta(days=2): (1.2, 1.0)}  # shops shut on Easter Sunday
            for day, (in_store, web) in special.items():
                i = (day - START).days
                if 0 <= i < len(n):
                    store[i] *= in_store
                    online[i] *= web
            events = [(date(year, 1, 2), date(year, 1, 15), 0.30),               # January sale
                      (bf - timedelta(days=4), bf + timedelta(days=4), 0.35),   # Black Friday week
                      (date(year, 6, 20), date(year, 8, 1), 0.18),               # summer sale
                      (date(year, 12, 26), date(year + 1, 1, 1), 0.35)]          # Boxing Day sale
            for first, last, share in events:
                lo, hi = max((first - START).days, 0), min((last - START).days, len(n))
                if lo < hi:
                    promo[lo:hi] = share
                    self.sale_event[lo:hi] = True
        noise = rng.lognormal(0.0, 0.10, len(n))                # weather, football, the news
        self.store_weights = store * noise
        self.online_weights = online * noise
        self.promo = promo

    def times(self, n: int, channel: str, rng: np.random.Generator) -> np.ndarray:
        """n wall-clock times (London, seconds since 1970 as if UTC) drawn by day and hour weights."""
        weights = self.store_weights if channel == "store" else self.online_weights
        day = _categorical(rng, weights, n)
        if channel == "store":
            sunday = self.weekday[day] == 6
            hour = np.where(sunday, _categorical(rng, SUNDAY_HOURS, n), _categorical(rng, STORE_HOURS, n))
        else:
            hour = _categorical(rng, ONLINE_HOURS, n)
        return (self.index0 + day) * DAY + hour * 3600 + rng.integers(0, 3600, n)

    def day_of(self, wall: np.ndarray) -> np.ndarray:
        return np.clip(wall // DAY - self.index0, 0, len(self.days) - 1)


def _categorical(rng: np.random.Generator, probs, n: int) -> np.ndarray:
    cdf = np.cumsum(probs, dtype=np.float64)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)


def _utc_offsets(wall: np.ndarray) -> np.ndarray:
    """London's UTC offset in seconds at each wall-clock time (an ambiguous hour read as its first pass).

    Taken per hour, not per day: the clocks change at 01:00 UTC, so the hour after midnight on a
    change day has the other day's offset (00:30 on 27 October 2024 is 23:30 UTC the day before).
    """
    hours, at = np.unique(wall // 3600, return_inverse=True)
    offsets = np.array([ZONE.utcoffset(EPOCH + timedelta(hours=int(h))).total_seconds() for h in hours], np.int64)
    return offsets[at.reshape(-1)]


def _wall_text(wall: np.ndarray) -> pa.Array:
    """`2024-03-05 14:23:11`: a naive local time, as tills export it."""
    return pa.array(wall, pa.timestamp("s")).cast(pa.string())


def _utc_text(wall: np.ndarray) -> pa.Array:
    """`2024-03-05T14:23:11Z`: the instant in UTC, as web systems export it."""
    text = pa.array(wall - _utc_offsets(wall), pa.timestamp("s")).cast(pa.string())
    return pc.binary_join_element_wise(pc.replace_substring(text, " ", "T"), "Z", "")


def _text(values: np.ndarray) -> pa.Array:
    """Integers as text."""
    return pa.array(values).cast(pa.string())


def _money_text(cents: np.ndarray) -> pa.Array:
    """Cents as `-12.50`-style text."""
    whole = np.abs(cents)
    text = pc.binary_join_element_wise(_text(whole // 100), pc.utf8_lpad(_text(whole % 100), 2, "0"), ".")
    return pc.if_else(pa.array(cents < 0), pc.binary_join_element_wise("-", text, ""), text)


def _with(text: pa.Array, at: np.ndarray, values: list[str]) -> pa.Array:
    """`text` with the values at positions `at` (sorted) replaced."""
    mask = np.zeros(len(text), bool)
    mask[at] = True
    return pc.replace_with_mask(text, pa.array(mask), pa.array(values, pa.string()))


# ==========================================================================================================
# the catalogue
# ==========================================================================================================

class _Catalog:
    """Products (index i has id PRODUCT_ID_BASE + 1 + i) with prices, costs and popularity."""

    def __init__(self, rows: int, rng: np.random.Generator):
        combos = []
        for c, (_share, _cost, _season, brands, subs) in enumerate(CATEGORIES.values()):
            for subcategory, items in subs.items():
                for item in items.split("|"):
                    name, price = item.rsplit(" ", 1)
                    for brand in brands:
                        for variant, factor in VARIANTS:
                            combos.append((c, subcategory, brand, f"{brand} {variant}{name}", float(price) * factor))
        n = int(np.clip(rows // 250, 160, 900))
        # every category gets its share of the range; within it, any brand / item / variant
        by_category = [[combo for combo in combos if combo[0] == c] for c in range(len(CATEGORIES))]
        per = np.maximum(np.round(n * np.array([0.16, 0.12, 0.13, 0.16, 0.12, 0.1, 0.1, 0.11])), 8).astype(int)
        chosen = []
        for c, options in enumerate(by_category):
            picks = rng.choice(len(options), size=min(per[c], len(options)), replace=False)
            chosen += [options[i] for i in sorted(picks)]
        chosen = [chosen[i] for i in rng.permutation(len(chosen))]
        self.n = len(chosen)
        self.ids = PRODUCT_ID_BASE + 1 + np.arange(self.n)
        self.category = np.array([c for c, *_ in chosen])
        self.subcategory = [s for _, s, *_ in chosen]
        self.brand = [b for _, _, b, *_ in chosen]
        self.name = [name for *_, name, _ in chosen]
        base = np.array([p for *_, p in chosen]) * rng.lognormal(0.0, 0.12, self.n)
        # list prices per trading year: charm prices (12.99, 7.49), up PRICE_RISE each January
        self.years = END.year - START.year
        self.price_cents = np.stack([_charm(base * PRICE_RISE**y) for y in range(self.years)], axis=1)
        cost_share = np.array([v[1] for v in CATEGORIES.values()])[self.category]
        cost = self.price_cents[:, -1] * cost_share * rng.uniform(0.85, 1.12, self.n)
        self.cost_cents = np.round(cost).astype(np.int64)
        self.discontinued = rng.random(self.n) < 0.05
        share = np.array([v[0] for v in CATEGORIES.values()])
        counts = np.bincount(self.category, minlength=len(share))
        popularity = rng.lognormal(0.0, 1.0, self.n) * (base ** -0.35)
        popularity *= np.where(self.discontinued, 0.05, 1.0)
        # a category's products split its share of sales
        within = np.zeros(self.n)
        for c in range(len(share)):
            mask = self.category == c
            within[mask] = popularity[mask] / popularity[mask].sum() * share[c] if counts[c] else 0
        self.popularity = within
        self.season = np.array([v[2] for v in CATEGORIES.values()])     # category x month
        self.grocery = self.category == list(CATEGORIES).index("Grocery")

    def pick(self, month: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A product index per element, by popularity and the month's category season."""
        out = np.empty(len(month), np.int64)
        for m in range(12):
            where = np.flatnonzero(month == m)
            if len(where):
                out[where] = _categorical(rng, self.popularity * self.season[self.category, m], len(where))
        return out


def _charm(pounds: np.ndarray) -> np.ndarray:
    """Shop prices in cents: £12.99 / £7.49 / £1.19 endings."""
    big = np.ceil(pounds) * 100 - 1
    mid = np.ceil(pounds * 2) * 50 - 1
    small = np.maximum(np.round(pounds * 10) * 10 - 1, 29)
    return np.where(pounds >= 20, big, np.where(pounds >= 5, mid, small)).astype(np.int64)


# ==========================================================================================================
# customers, sales, interactions
# ==========================================================================================================

class _Customers:
    """Customers in signup order: index i is customer_id i + 1."""

    def __init__(self, signup: np.ndarray, rng: np.random.Generator):
        self.signup = signup                       # wall-clock seconds, sorted
        self.segment = _categorical(rng, SEGMENT_SHARES, len(signup))

    def pick(self, wall: np.ndarray, rng: np.random.Generator, skew: float = 1.3) -> np.ndarray:
        """A customer id per time among those signed up by then; long-standing customers come back more."""
        active = np.searchsorted(self.signup, wall, side="right")
        rank = np.minimum((active * rng.random(len(wall)) ** skew).astype(np.int64), active - 1)
        return rank + 1


def _signups(n: int, days: _Calendar, rng: np.random.Generator) -> _Customers:
    """Signup times: 45% of the base joined in the five years before START, the rest during the data."""
    before = int(n * 0.45)
    first = days.index0 - 5 * 365
    early_days = first + (np.sqrt(rng.random(before)) * (days.index0 - first)).astype(np.int64)  # growing base
    early = early_days * DAY + 9 * 3600 + rng.integers(0, 12 * 3600, before)
    later = days.times(n - before, "online", rng)
    return _Customers(np.sort(np.concatenate([early, later])), rng)


class _Rows:
    """Rows as named arrays (sale lines, interaction events), sorted by time."""

    def __init__(self, **arrays):
        self.__dict__.update(arrays)


def _sales(rows: int, catalog: _Catalog, customers: _Customers, days: _Calendar, rng: np.random.Generator) -> _Rows:
    n_tx = int(rows / 1.7 * 1.15) + 10
    in_store = rng.random(n_tx) < STORE_SHARE
    lines = np.where(in_store, _categorical(rng, STORE_LINES, n_tx), _categorical(rng, ONLINE_LINES, n_tx)) + 1
    ends = np.cumsum(lines)
    n_tx = int(np.searchsorted(ends, rows, side="left")) + 1          # transactions covering `rows` lines
    lines[n_tx - 1] -= ends[n_tx - 1] - rows
    in_store, lines = in_store[:n_tx], lines[:n_tx]
    wall = np.empty(n_tx, np.int64)
    wall[in_store] = days.times(int(in_store.sum()), "store", rng)
    wall[~in_store] = days.times(int((~in_store).sum()), "online", rng)
    order = np.argsort(wall, kind="stable")
    wall, in_store, lines = wall[order], in_store[order], lines[order]
    day = days.day_of(wall)
    progress = day / max(len(days.days) - 1, 1)
    channel = np.full(n_tx, IN_STORE)
    online = np.flatnonzero(~in_store)
    shares = ONLINE_SHARE_FIRST + np.outer(progress[online], ONLINE_SHARE_LAST - ONLINE_SHARE_FIRST)
    cdf = np.cumsum(shares, axis=1)
    channel[online] = ONLINE_CHANNELS[(rng.random(len(online))[:, None] > cdf[:, :-1]).sum(axis=1)]
    store = _pick_stores(channel, day, days, rng)
    customer = customers.pick(wall, rng)
    customer[in_store & (rng.random(n_tx) < ANONYMOUS)] = 0           # no loyalty card: anonymous
    tx = np.repeat(np.arange(n_tx), lines)
    month = days.month[day[tx]]
    product = catalog.pick(month, rng)
    quantity = np.where(catalog.grocery[product], _categorical(rng, GROCERY_QUANTITY, rows),
                        _categorical(rng, QUANTITY, rows)) + 1
    year = np.clip(days.year[day[tx]] - START.year, 0, catalog.years - 1)
    price = catalog.price_cents[product, year]
    promo = rng.random(rows) < days.promo[day[tx]]
    event = days.sale_event[day[tx]]
    pct = np.where(event, rng.choice([15, 20, 25, 30, 40, 50], rows, p=[0.2, 0.25, 0.2, 0.15, 0.12, 0.08]),
                   rng.choice([5, 10, 15], rows, p=[0.3, 0.5, 0.2]))
    discount = np.where(promo, np.round(quantity * price * pct / 100), 0).astype(np.int64)
    lag = np.where(in_store, rng.integers(60, 1800, n_tx), rng.integers(5, 120, n_tx))   # till sync delay
    return _Rows(sale_id=SALE_ID_BASE + 1 + np.arange(rows), tx_id=TRANSACTION_ID_BASE + 1 + tx,
                  wall=wall[tx], updated=(wall + lag)[tx], store=store[tx], channel=channel[tx],
                  customer=customer[tx], product=product, quantity=quantity, price=price, discount=discount)


def _pick_stores(channel: np.ndarray, day: np.ndarray, days: _Calendar, rng: np.random.Generator) -> np.ndarray:
    """Shops by size for in-store and click & collect; the fulfilment centre for the rest."""
    shops = [s for s in STORES if s[0] != ONLINE_STORE]
    ids = np.array([s[0] for s in shops])
    size = np.array([s[5] for s in shops], dtype=float)
    opened = np.array([(date.fromisoformat(s[6]) - START).days for s in shops])
    trading = np.array([s[7] is None for s in shops])
    weight = size ** 0.9 * rng.lognormal(0.0, 0.25, len(shops)) * trading
    weight *= np.where(np.array([s[3] for s in shops]) == "London", 1.3, 1.0)
    physical = (channel == IN_STORE) | (channel == CLICK_COLLECT)
    pick = _categorical(rng, weight, len(channel))
    not_yet = opened[pick] > day
    established = weight * (opened <= 0)
    pick[not_yet] = _categorical(rng, established, int(not_yet.sum()))   # that sale went to an open shop
    return np.where(physical, ids[pick], ONLINE_STORE)


def _interactions(n: int, catalog: _Catalog, customers: _Customers, days: _Calendar, rng: np.random.Generator):
    wall = np.sort(days.times(n, "online", rng))
    day = days.day_of(wall)
    phone = rng.random(n) < 0.04
    channel = np.where(phone, PHONE, np.where(rng.random(n) < 0.58, WEBSITE, APP))
    kind = np.where(phone, INTERACTION_TYPES.index("support_call"), _categorical(rng, DIGITAL_TYPE_SHARES, n))
    product = np.where(WITH_PRODUCT[kind], catalog.pick(days.month[day], rng), -1)
    seconds = np.round(np.array(TYPE_SECONDS)[kind] * rng.lognormal(0.0, 0.6, n)).astype(np.int64) + 1
    status = np.zeros(n, np.int64)                                   # completed
    u = rng.random(n)
    view, cart = kind == 0, kind == INTERACTION_TYPES.index("cart_add")
    checkout, support = kind == INTERACTION_TYPES.index("checkout"), kind >= INTERACTION_TYPES.index("support_chat")
    status[view & (u < 0.22)] = STATUSES.index("bounced")
    seconds[view & (u < 0.22)] = rng.integers(1, 8, int((view & (u < 0.22)).sum()))
    status[cart & (u < 0.30)] = STATUSES.index("abandoned")
    status[checkout & (u < 0.12)] = STATUSES.index("failed")
    status[support & (u < 0.10)] = STATUSES.index("abandoned")
    return _Rows(interaction_id=INTERACTION_ID_BASE + 1 + np.arange(n), wall=wall, customer=customers.pick(wall, rng),
                  channel=channel, kind=kind, product=product, seconds=seconds, status=status)


def _first_purchases(customers: _Customers, sales: _Rows, rng: np.random.Generator) -> np.ndarray:
    """Each customer's first purchase (wall seconds; -1: never bought), as the CRM records it.

    Customers who joined before START mostly bought before it too, out of the warehouse's sales history;
    the others' first purchase is their first sale here.
    """
    n = len(customers.signup)
    first = np.full(n, np.iinfo(np.int64).max)
    known = sales.customer > 0
    np.minimum.at(first, sales.customer[known] - 1, sales.wall[known])
    start = _wall_seconds(datetime.combine(START, datetime.min.time()))
    earlier = customers.signup + rng.exponential(45, n).astype(np.int64) * DAY + rng.integers(60, 3600, n)
    before = (customers.signup < start) & (rng.random(n) < 0.8) & (earlier < np.minimum(first, start))
    first[before] = earlier[before]
    first[first == np.iinfo(np.int64).max] = -1
    return first


def _stock(cat: _Catalog, sales: _Rows, days: _Calendar, rng: np.random.Generator) -> _Rows:
    """Each product's closing stock per day: sales take it down, a delivery 1-4 days after the reorder point
    brings it up to four weeks' cover; discontinued products sell out and are not reordered."""
    n_days = len(days.days)
    sold = np.zeros((n_days, cat.n), np.int64)
    np.add.at(sold, (days.day_of(sales.wall), sales.product), sales.quantity)
    daily = sold.mean(axis=0)
    reorder = np.ceil(daily * 7).astype(np.int64) + 5
    target = np.ceil(daily * 28).astype(np.int64) + 20
    level = np.where(cat.discontinued, np.round(target * 0.3), np.round(target * rng.uniform(0.5, 1.1, cat.n)))
    level = level.astype(np.int64)
    lead = rng.integers(1, 5, (n_days, cat.n))
    arrives, amount = np.full(cat.n, -1), np.zeros(cat.n, np.int64)
    closing = np.empty((n_days, cat.n), np.int64)
    for d in range(n_days):
        delivered = arrives == d
        level[delivered] += amount[delivered]
        arrives[delivered] = -1
        level = np.maximum(level - sold[d], 0)                      # a sale beyond the shelf is a back order
        order = (level <= reorder) & (arrives < 0) & ~cat.discontinued
        arrives[order], amount[order] = d + lead[d, order], target[order] - level[order]
        closing[d] = level
    return _Rows(closing=closing, reorder=reorder)


def _spoil(n: int, shares: dict[str, float], rng: np.random.Generator, extra: int = 0) -> dict[str, np.ndarray]:
    """Disjoint sets of row indices, one per kind of dirt (at least one row each)."""
    sizes = {kind: max(1, round(n * share)) for kind, share in shares.items()}
    picked = rng.choice(n, size=sum(sizes.values()) + extra, replace=False)
    out, at = {}, 0
    for kind, size in sizes.items():
        out[kind] = np.sort(picked[at:at + size])
        at += size
    if extra:
        out["_extra"] = np.sort(picked[at:])
    return out


# ==========================================================================================================
# writing the sources
# ==========================================================================================================

def _csv_lines(columns: dict[str, pa.Array]) -> pa.Array:
    """One CSV line per row from text columns (nulls empty; values needing quotes already quoted)."""
    return pc.binary_join_element_wise(*[pc.fill_null(v, "") for v in columns.values()], ",")


def _write_csv_files(folder: Path, prefix: str, header: list[str], lines: pa.Array, month: np.ndarray,
                     order: np.ndarray) -> int:
    """One file per month (`prefix_YYYY-MM.csv`); `order` sorts the lines by month, then as they go."""
    lines, month = lines.take(pa.array(order)), month[order]
    bounds = np.flatnonzero(np.diff(month)) + 1
    for lo, hi in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(month)]])):
        stamp = str(np.datetime64(int(month[lo]), "M"))
        text = "\n".join([",".join(header), *lines[lo:hi].to_pylist()]) + "\n"
        (folder / f"{prefix}_{stamp}.csv").write_text(text, encoding="utf-8")
    return len(lines)


def _wall_seconds(moment: datetime) -> int:
    """A naive London wall-clock time as the generator's seconds since 1970."""
    return int((moment - EPOCH).total_seconds())


def _month_of(wall: np.ndarray) -> np.ndarray:
    return (wall // DAY).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def _write_sales(folder: Path, s: _Rows, rng: np.random.Generator) -> dict[str, int]:
    n = len(s.sale_id)
    dirt = _spoil(n, SALES_DIRT, rng, extra=max(1, n // 100_000))
    truncated = dirt.pop("_extra")
    quantity, discount = s.quantity.copy(), s.discount.copy()
    quantity[dirt["negative_quantity"]] *= -1                           # returns keyed as sales
    discount[dirt["negative_quantity"]] = 0
    product_id = s.product + PRODUCT_ID_BASE + 1
    product_id[dirt["unknown_product"]] = rng.integers(*UNKNOWN_PRODUCT_IDS, len(dirt["unknown_product"]))
    # corrections: a later version of some sales, exported again with a newer updated_at
    dup = dirt["duplicate"]
    fixed_qty = quantity[dup].copy()
    fewer = fixed_qty > 1
    fixed_qty[fewer] -= 1                                               # one item was not taken after all
    price_match = np.round(fixed_qty * s.price[dup] * 0.1).astype(np.int64)
    fixed_discount = np.minimum(np.where(fewer, discount[dup], price_match), fixed_qty * s.price[dup])
    fixed_updated = ((s.wall[dup] // DAY) + rng.integers(1, 11, len(dup))) * DAY + rng.integers(9 * 3600, 17 * 3600,
                                                                                               len(dup))
    # a correction is made before the extract that carries it: one drawn past EXPORTED_AT happened instead
    # between the sale's own export and the extract (a change time in the future would move the cursor
    # watermark past sales that arrive later, and they would be skipped)
    exported = _wall_seconds(EXPORTED_AT)
    late = fixed_updated > exported
    after = s.updated[dup][late] + 60
    fixed_updated[late] = after + (rng.random(int(late.sum())) * (exported - after)).astype(np.int64)
    # every written row: the sales, then the corrections
    both = np.concatenate([np.arange(n), dup])
    quantity = np.concatenate([quantity, fixed_qty])
    discount = np.concatenate([discount, fixed_discount])
    price = s.price[both]
    total = quantity * price - discount
    updated = np.concatenate([s.updated, fixed_updated])
    customer = s.customer[both]
    sold_at = _with(_wall_text(s.wall[both]), dirt["bad_date"], list(rng.choice(BAD_DATES, len(dirt["bad_date"]))))
    rejected = np.concatenate(list(dirt.values()) + [truncated])
    as_text = np.sort(rng.choice(np.setdiff1d(np.arange(n), rejected), size=max(1, round(n * MONEY_AS_TEXT)),
                                 replace=False))
    columns = {
        "sale_id": _text(s.sale_id[both]), "transaction_id": _text(s.tx_id[both]), "sold_at": sold_at,
        "store_id": _text(s.store[both]), "channel_id": _text(s.channel[both]),
        "customer_id": pa.array(np.where(customer > 0, customer, 0), mask=customer <= 0).cast(pa.string()),
        "product_id": _text(product_id[both]), "quantity": _text(quantity),
        # spreadsheet-edited exports: "£1,250.00" prices and "1,250.00" totals (loaded cleaned)
        "unit_price": _with(_money_text(price), as_text, [f'"£{c / 100:,.2f}"' for c in price[as_text]]),
        "discount": _money_text(discount),
        "total_amount": _with(_money_text(total), as_text, [f'"{c / 100:,.2f}"' for c in total[as_text]]),
        "updated_at": _wall_text(updated),
    }
    lines = _csv_lines(columns)
    lines = _with(lines, truncated, [",".join(lines[int(i)].as_py().split(",")[:6]) for i in truncated])  # cut off
    months = _month_of(s.wall)
    files_by = np.concatenate([months, np.minimum(_month_of(fixed_updated), months.max())])
    order = np.lexsort((np.arange(len(lines)), updated, files_by))
    written = _write_csv_files(folder, "sales", SALES_COLUMNS, lines, files_by, order)
    return {"fact_sales": written, **{f"fact_sales.{k}": len(v) for k, v in dirt.items()},
            "fact_sales.truncated_line": len(truncated), "fact_sales.money_text": len(as_text)}


def _write_stock(folder: Path, stock: _Rows, cat: _Catalog, days: _Calendar) -> dict[str, int]:
    """The warehouse system's end-of-day stock counts, one file per month, naive London times."""
    n_days, n = stock.closing.shape
    day = np.repeat(days.days.astype(np.int64), n)
    counted = day * DAY + 23 * 3600 + 30 * 60                         # the count runs at 23:30 each night
    lines = _csv_lines({"stock_date": pa.array(day.astype("datetime64[D]")).cast(pa.string()),
                        "product_id": _text(np.tile(cat.ids, n_days)), "closing_stock": _text(stock.closing.ravel()),
                        "counted_at": _wall_text(counted)})
    written = _write_csv_files(folder, "stock", STOCK_COLUMNS, lines, _month_of(counted), np.arange(len(day)))
    return {"fact_stock": written}


def _write_interactions(folder: Path, e: _Rows, customers: _Customers, rng: np.random.Generator) -> dict[str, int]:
    n = len(e.interaction_id)
    dirt = _spoil(n, INTERACTION_DIRT, rng)
    kind = np.array(INTERACTION_TYPES, dtype=object)[e.kind]
    kind[dirt["unknown_type"]] = rng.choice(["clik", "VIEW", "add-to-cart", "page_view"], len(dirt["unknown_type"]))
    seconds = e.seconds.copy()
    seconds[dirt["negative_duration"]] = -rng.integers(1, 600, len(dirt["negative_duration"]))
    customer = e.customer.copy()
    customer[dirt["unknown_customer"]] = len(customers.signup) + rng.integers(1000, 9000, len(dirt["unknown_customer"]))
    product = e.product + PRODUCT_ID_BASE + 1
    lines = _csv_lines({
        "interaction_id": _text(e.interaction_id), "customer_id": _text(customer), "channel_id": _text(e.channel),
        "product_id": pa.array(product, mask=e.product < 0).cast(pa.string()),
        "interaction_type": pa.array(kind, pa.string()),
        "interaction_at": _with(_utc_text(e.wall), dirt["bad_timestamp"],
                                list(rng.choice(BAD_ISO, len(dirt["bad_timestamp"])))),
        "duration_seconds": _text(seconds), "status": pa.array(np.array(STATUSES, dtype=object)[e.status], pa.string()),
    })
    written = _write_csv_files(folder, "events", INTERACTION_COLUMNS, lines, _month_of(e.wall), np.arange(n))
    return {"fact_interactions": written, **{f"fact_interactions.{k}": len(v) for k, v in dirt.items()}}


def _write_products(path: Path, cat: _Catalog, stock: _Rows, rng: np.random.Generator) -> dict[str, int]:
    """The catalogue workbook: a title block, then the header on row 4 (`header_row: 3`)."""
    import xlsxwriter

    names = list(CATEGORIES)
    created = [datetime(2019, 1, 1) + timedelta(days=int(d), minutes=int(m))
               for d, m in zip(rng.integers(0, (START - date(2019, 1, 1)).days - 30, cat.n),
                               rng.integers(8 * 60, 18 * 60, cat.n))]
    updated = [EXPORTED_AT - timedelta(days=int(d), minutes=int(m))
               for d, m in zip(rng.integers(3, 300, cat.n), rng.integers(0, 600, cat.n))]
    stock, reorder = stock.closing[-1], stock.reorder                      # on hand at the extract
    records = []
    for i in range(cat.n):
        records.append([int(cat.ids[i]), f"{CATEGORY_CODES[names[cat.category[i]]]}-{cat.ids[i]}", cat.name[i],
                        names[cat.category[i]], cat.subcategory[i], cat.brand[i], 200 + int(cat.category[i]) * 10
                        + int(rng.integers(1, 6)), cat.cost_cents[i] / 100, cat.price_cents[i, -1] / 100,
                        int(stock[i]), int(reorder[i]), not bool(cat.discontinued[i]), created[i], updated[i]])
    # cleaned, not rejected: prices typed as text by someone editing the sheet, names with stray spaces
    for i in rng.choice(cat.n, size=max(1, cat.n // 40), replace=False):
        records[i][8] = f"£{records[i][8]:,.2f}"
    for i in rng.choice(cat.n, size=max(1, cat.n // 50), replace=False):
        records[i][2] = f"  {records[i][2]} "
    # dirty: draft rows nobody finished, typos, and a product listed twice (the older row is stale)
    next_id = int(cat.ids[-1]) + 1
    dirty = {"blank_name": 0, "negative_cost": 0, "unknown_category": 0, "bad_date": 0, "duplicate": 0}
    n_each = max(1, cat.n // 150)
    extra = []
    for kind in ("blank_name", "negative_cost", "unknown_category", "bad_date"):
        for _ in range(n_each):
            base = list(records[int(rng.integers(0, cat.n))])
            base[0], base[1] = next_id, f"NEW-{next_id}"
            next_id += 1
            if kind == "blank_name":
                base[2] = " "
            elif kind == "negative_cost":
                base[7] = -round(abs(base[7]), 2)
            elif kind == "unknown_category":
                base[3] = str(rng.choice(["Misc", "Seasonal??", "TBC"]))
            else:
                base[12] = str(rng.choice(["31/02/2023", "2023-13-01", "tbc"]))
            base[2] = base[2] if kind == "blank_name" else f"{base[2]} (draft)"
            extra.append(base)
            dirty[kind] += 1
    for i in rng.choice(cat.n, size=n_each, replace=False):
        stale = list(records[i])
        stale[7] = round(stale[7] * 0.93, 2)                             # last year's cost
        stale[13] = stale[13] - timedelta(days=200)
        extra.append(stale)
        dirty["duplicate"] += 1
    for row in extra:
        records.insert(int(rng.integers(0, len(records) + 1)), row)
    workbook = xlsxwriter.Workbook(str(path), {"default_date_format": "yyyy-mm-dd hh:mm:ss"})
    workbook.set_properties({"title": "Product catalogue", "author": "Buying team", "created": EXPORTED_AT})
    sheet = workbook.add_worksheet("Catalogue")
    bold = workbook.add_format({"bold": True})
    money = workbook.add_format({"num_format": "£#,##0.00"})
    sheet.write(0, 0, "Product catalogue — all ranges", bold)
    sheet.write(1, 0, f"Exported {EXPORTED_AT:%d %B %Y %H:%M} from the buying system")
    sheet.write_row(3, 0, PRODUCT_COLUMNS, bold)
    for r, record in enumerate(records, start=4):
        for c, value in enumerate(record):
            if isinstance(value, datetime):
                sheet.write_datetime(r, c, value)
            elif c in (7, 8) and isinstance(value, float):
                sheet.write_number(r, c, value, money)
            else:
                sheet.write(r, c, value)
    sheet.freeze_panes(4, 0)
    sheet.set_column(0, 1, 11)
    sheet.set_column(2, 2, 34)
    sheet.set_column(3, 13, 14)
    workbook.close()
    return {"dim_products": len(records), **{f"dim_products.{k}": v for k, v in dirty.items()}}


def _write_database(path: Path, rng: np.random.Generator) -> dict[str, int]:
    """The store-operations database: dim_stores and dim_channels, as its application keeps them."""
    if path.exists():
        path.unlink()
    managers = [f"{FIRST_NAMES[int(i)]} {LAST_NAMES[int(j)]}" for i, j in
                zip(rng.integers(0, len(FIRST_NAMES), len(STORES)), rng.integers(0, len(LAST_NAMES), len(STORES)))]
    stores = []
    for (sid, name, kind, city, region, size, opened, closed, postcode), manager in zip(STORES, managers):
        changed = (EXPORTED_AT - timedelta(days=int(rng.integers(5, 400)))).strftime("%Y-%m-%d %H:%M:%S")
        created = f"{opened} 08:00:00"
        stores.append((sid, name, kind, f"Unit {int(rng.integers(1, 60))}, {name.split(' ', 1)[-1]}", city, postcode,
                       region, "United Kingdom", manager, size, opened, closed, int(closed is None), created, changed))
    # dirty: a placeholder row with no name, a typo'd opening date, and a store whose row was copied
    # when its manager changed (the older copy is stale)
    stale = list(stores[16])
    stale[8], stale[14] = "Vacant post", "2023-02-01 09:00:00"
    dirty_rows = [
        (97, "  ", "high_street", "", "Chester", "CH1 1AA", "North West", "United Kingdom", None, 700, "2026-03-01",
         None, 0, "2025-11-20 10:00:00", "2025-11-20 10:00:00"),
        (98, "Swindon Designer Outlet", "outlet", "Unit 4, Kemble Drive", "Swindon", "SN2 2DY", "South West",
         "United Kingdom", "Sam Reed", 950, "2026-02-30", None, 0, "2025-12-01 11:30:00", "2025-12-01 11:30:00"),
        tuple(stale),
    ]
    rows = stores[:16] + [dirty_rows[2]] + stores[16:] + dirty_rows[:2]
    channels = [(cid, name, kind, text, 1, "2015-01-05 09:00:00",
                 (EXPORTED_AT - timedelta(days=int(rng.integers(10, 500)))).strftime("%Y-%m-%d %H:%M:%S"))
                for cid, name, kind, text in CHANNELS]
    channels.append((7, "Social shop", "socail", "Checkout inside social apps (pilot)", 0, "2025-10-01 09:00:00",
                     "2025-10-01 09:00:00"))
    con = sqlite3.connect(path)
    try:
        con.executescript("""
            CREATE TABLE dim_stores (
                store_id INTEGER, store_name TEXT, store_type TEXT, address TEXT, city TEXT, postcode TEXT,
                region TEXT, country TEXT, manager TEXT, size_sqm INTEGER, open_date TEXT, close_date TEXT,
                active INTEGER, created_at TEXT, updated_at TEXT);
            CREATE TABLE dim_channels (
                channel_id INTEGER PRIMARY KEY, channel_name TEXT NOT NULL, channel_type TEXT, description TEXT,
                active INTEGER, created_at TEXT, updated_at TEXT);
        """)
        con.executemany(f"INSERT INTO dim_stores VALUES ({', '.join('?' * 15)})", rows)
        con.executemany("INSERT INTO dim_channels VALUES (?, ?, ?, ?, ?, ?, ?)", channels)
        con.commit()
    finally:
        con.close()
    return {"dim_stores": len(rows), "dim_stores.blank_name": 1, "dim_stores.bad_date": 1, "dim_stores.duplicate": 1,
            "dim_channels": len(channels), "dim_channels.unknown_type": 1}


POSTCODE_AREA = {s[3]: re.match(r"[A-Z]+", s[8]).group() for s in STORES}
POSTCODE_LETTERS = np.array(list("ABDEFGHJLNPQRSTUWXYZ"))


def _write_customers(path: Path, customers: _Customers, bought_at: np.ndarray, active: np.ndarray,
                     rng: np.random.Generator) -> dict[str, int]:
    """The CRM's customers as the API serves them (nested address, ISO UTC timestamps, no first purchase: null)."""
    n = len(customers.signup)
    shops = [s for s in STORES if s[7] is None and s[0] != ONLINE_STORE]
    cities = [s[3] for s in shops]
    city = _categorical(rng, np.array([s[5] for s in shops], float) ** 0.8, n)    # customers live near shops
    city = city.tolist()
    first = rng.integers(0, len(FIRST_NAMES), n).tolist()
    last = rng.integers(0, len(LAST_NAMES), n).tolist()
    street = rng.integers(0, len(LAST_NAMES), n).tolist()
    domain = rng.integers(0, len(EMAIL_DOMAINS), n).tolist()
    numbers = rng.integers(1, 999, (n, 2)).tolist()
    phone = rng.integers(100_000_000, 999_999_999, n).astype(str).tolist()
    district = rng.integers(1, 30, (n, 2)).tolist()
    letters = POSTCODE_LETTERS[rng.integers(0, len(POSTCODE_LETTERS), (n, 2))].tolist()
    opt_in = (rng.random(n) < 0.46).tolist()
    segment = customers.segment.tolist()
    created = _utc_text(customers.signup).to_pylist()
    horizon = (EXPORTED_AT.date() - date(1970, 1, 1)).days * DAY
    changed = customers.signup + (rng.exponential(120, n) * DAY).astype(np.int64)      # profile edits
    late = changed >= horizon
    changed[late] = customers.signup[late] + (rng.random(int(late.sum())) * (horizon - customers.signup[late]))
    bought = bought_at >= 0
    changed[bought] = np.maximum(changed[bought], bought_at[bought])    # the CRM records the first purchase
    updated = _utc_text(changed).to_pylist()
    first_at = pc.if_else(pa.array(bought), _utc_text(np.where(bought, bought_at, 0)),
                          pa.nulls(n, pa.string())).to_pylist()
    records = []
    for i in range(n):
        fn, ln, town = FIRST_NAMES[first[i]], LAST_NAMES[last[i]], cities[city[i]]
        records.append({
            "customer_id": i + 1, "first_name": fn, "last_name": ln,
            "email": f"{fn}.{ln}{numbers[i][0]}@{EMAIL_DOMAINS[domain[i]]}".lower(),
            "phone": f"+44 7{phone[i][:3]} {phone[i][3:]}",
            "address": {"line1": f"{numbers[i][1] % 220 + 1} {LAST_NAMES[street[i]]} Road", "city": town,
                        "postcode": f"{POSTCODE_AREA[town]}{district[i][0]} {district[i][1] % 9 + 1}"
                                    f"{letters[i][0]}{letters[i][1]}",
                        "country": "United Kingdom"},
            "segment": SEGMENTS[segment[i]], "marketing_opt_in": opt_in[i],
            "created_at": created[i], "first_purchase_at": first_at[i], "updated_at": updated[i],
        })
    # dirty: only customers with no sales or interactions, so their rejection removes nobody's history
    sizes = {kind: max(1, round(n * share)) for kind, share in CUSTOMER_DIRT.items()}
    idle = np.flatnonzero(~active[1:n + 1])
    while len(idle) < sum(sizes.values()):                 # too few idle customers: add brand-new signups
        clone = dict(records[-1], customer_id=len(records) + 1, address=dict(records[-1]["address"]))
        records.append(clone)
        idle = np.append(idle, len(records) - 1)
    picked = iter(rng.choice(idle, size=sum(sizes.values()), replace=False))
    for kind, size in sizes.items():
        for _ in range(size):
            record = records[next(picked)]
            if kind == "blank_name":
                record["first_name" if rng.random() < 0.5 else "last_name"] = ["  ", None][int(rng.integers(0, 2))]
            elif kind == "bad_email":
                record["email"] = str(rng.choice([f"{record['first_name'].lower()}@", "no email given",
                                                  f"{record['last_name'].lower()}.example.com"]))
            elif kind == "bad_date":
                record["created_at"] = str(rng.choice(BAD_ISO))
            else:
                record["segment"] = str(rng.choice(["Platinum", "VIP", "Gold"]))
    # the CRM trims nothing: a few names arrive padded (loaded trimmed)
    for i in rng.choice(len(records), size=max(1, len(records) // 100), replace=False):
        if (records[i]["first_name"] or "").strip():
            records[i]["first_name"] = f" {records[i]['first_name']}  "
    path.write_text(json.dumps(records, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    return {"dim_customers": len(records), **{f"dim_customers.{k}": v for k, v in sizes.items()}}


# ==========================================================================================================
# the customers API
# ==========================================================================================================

MAX_PER_PAGE = 1000


def _instant(text: str) -> datetime:
    """An ISO timestamp (`Z`, an offset, or naive UTC) as an aware datetime; ValueError if it is not one."""
    text = text.strip()
    if "T" in text and " " in text:
        text = text.replace(" ", "+")          # an offset's `+` sent unencoded arrives as a space
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class CustomersApi:
    """The CRM's customer list, sorted by (updated_at, customer_id), paged and filtered by `updated_since`."""

    def __init__(self, records: list[dict]):
        self.records = sorted(records, key=lambda r: (_instant(r["updated_at"]), r["customer_id"]))
        self.stamps = [_instant(r["updated_at"]) for r in self.records]
        self.requests = 0
        self._lock = threading.Lock()

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, dict]:
        with self._lock:
            self.requests += 1
        if path.rstrip("/") in ("", "/healthz"):
            return 200, {"status": "ok", "customers": len(self.records)}
        if path.rstrip("/") != "/customers":
            return 404, {"error": f"no route {path}; try /customers"}
        try:
            page = int(params.get("page", 1))
            per_page = int(params.get("per_page", 100))
        except ValueError:
            return 400, {"error": "page and per_page must be integers"}
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            return 400, {"error": f"page must be >= 1 and per_page in 1..{MAX_PER_PAGE}"}
        rows = self.records
        if params.get("updated_since"):
            try:
                since = _instant(params["updated_since"])
            except ValueError:
                return 400, {"error": f"updated_since is not an ISO timestamp: {params['updated_since']!r}"}
            rows = rows[bisect.bisect_left(self.stamps, since):]
        chunk = rows[(page - 1) * per_page:page * per_page]
        return 200, {"data": chunk, "meta": {"page": page, "per_page": per_page, "total": len(rows),
                                             "pages": math.ceil(len(rows) / per_page)}}


def _handler(api: CustomersApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            parts = urlsplit(self.path)
            status, body = api.answer(parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)))
            data = json.dumps(body, ensure_ascii=False).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args) -> None:   # quiet
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serve_customers(project_dir: Path, port: int = 0) -> Iterator[str]:
    """Serve `project_dir/data/customers.json` on 127.0.0.1 (a free port by default); yields the base URL.

        GET {url}/customers?page=1&per_page=500&updated_since=2025-06-01T00:00:00Z
        -> {"data": [...], "meta": {"page", "per_page", "total", "pages"}}
    """
    records = json.loads((Path(project_dir) / "data" / "customers.json").read_text(encoding="utf-8"))
    api = CustomersApi(records)
    server = _Server(("127.0.0.1", port), _handler(api))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="retail-customers-api", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="the project folder (data goes to DIR/data)")
    parser.add_argument("--rows", type=int, default=200_000, help="sale lines to generate")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--serve", type=int, metavar="PORT", help="serve DIR's customers API on PORT instead")
    args = parser.parse_args(argv)
    if args.serve is not None:
        with serve_customers(args.dir, args.serve) as url:
            print(f"customers API at {url}/customers  (export RETAIL_API_URL={url}); Ctrl-C stops it")
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                pass
        return
    counts = prepare(args.dir, args.rows, args.seed)
    width = max(map(len, counts))
    for key, value in counts.items():
        print(f"{key:<{width}}  {value:>9,}")


if __name__ == "__main__":
    main()
