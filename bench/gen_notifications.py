#!/usr/bin/env python3
"""Writes N synthetic notifications in the CONTRACT.md import format (deterministic).

    python3 bench/gen_notifications.py 1000000 > /tmp/n.csv

Realistic shape for an import benchmark: all 47 prefectures, mixed case types, ages, sexes,
dates across 2021-2022, about a third with names, kana, phone and symptoms.
"""
import random
import sys

n = int(sys.argv[1])
rng = random.Random(20261122)
cols = ["external_id", "case_type", "reported_at", "prefecture", "name", "name_kana", "sex", "age",
        "phone", "symptoms", "onset_date", "diagnosis_date"]
out = sys.stdout
out.write(",".join(cols) + "\n")
types = ["confirmed"] * 8 + ["asymptomatic"] * 2 + ["suspected"]
sexes = ["male", "female", "female", "male", "unknown"]
for i in range(n):
    day = 1 + rng.randrange(700)
    y, d = (2021, day) if day <= 365 else (2022, day - 365)
    # day-of-year to month/day (non-leap years)
    months = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    m = 0
    while d > months[m]:
        d -= months[m]
        m += 1
    date = f"{y}-{m + 1:02d}-{d:02d}"
    detailed = i % 3 == 0
    row = [
        f"B-{i:08d}",
        types[rng.randrange(len(types))],
        f"{date}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00+09:00",
        f"{1 + rng.randrange(47):02d}",
        "山田 太郎" if detailed else "",
        "ヤマダ タロウ" if detailed else "",
        sexes[rng.randrange(len(sexes))],
        str(rng.randrange(100)),
        f"090-{rng.randrange(10000):04d}-{rng.randrange(10000):04d}" if detailed else "",
        "発熱;咳" if detailed else "",
        date if detailed else "",
        date if detailed else "",
    ]
    out.write(",".join(row) + "\n")
