#!/usr/bin/env python3
"""Writes N synthetic notifications in the CONTRACT.md import format (deterministic).

    python3 bench/gen_notifications.py 1000000 > /tmp/n.csv          # sparse (earlier sessions)
    python3 bench/gen_notifications.py 1000000 --full > /tmp/n.csv   # every person identified

Both: all 47 prefectures, mixed case types, ages, sexes, dates across 2021-2022.

Sparse (the file of BENCHMARKS.md's sessions one to nine): a third of the rows carry a name,
kana, phone and symptoms, all the same name, and no row a birth date, so no row goes through the
duplicate check and the kana index grows at one end.

--full: as a notification form is filled in (別記様式6-1): every row names its person (kanji and
kana from a few thousand surname and given-name pairs), with birth date, postal code, address
and, for nine in ten, a phone; onset and diagnosis dates for most. Every row goes through the
duplicate check (same kana name, birth date and sex within 60 days), and some are flagged.
"""
import datetime
import random
import sys

n = int(sys.argv[1])
full = "--full" in sys.argv[2:]
rng = random.Random(20261122)
cols = ["external_id", "case_type", "reported_at", "prefecture", "name", "name_kana", "sex", "age",
        "phone", "symptoms", "onset_date", "diagnosis_date"]
if full:
    cols += ["birth_date", "postal_code", "address"]
out = sys.stdout
out.write(",".join(cols) + "\n")

SURNAMES = [("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"), ("伊藤", "イトウ"),
            ("渡辺", "ワタナベ"), ("山本", "ヤマモト"), ("中村", "ナカムラ"), ("小林", "コバヤシ"), ("加藤", "カトウ"),
            ("吉田", "ヨシダ"), ("山田", "ヤマダ"), ("佐々木", "ササキ"), ("山口", "ヤマグチ"), ("松本", "マツモト"),
            ("井上", "イノウエ"), ("木村", "キムラ"), ("林", "ハヤシ"), ("斎藤", "サイトウ"), ("清水", "シミズ"),
            ("山崎", "ヤマザキ"), ("森", "モリ"), ("池田", "イケダ"), ("橋本", "ハシモト"), ("阿部", "アベ"),
            ("石川", "イシカワ"), ("山下", "ヤマシタ"), ("中島", "ナカシマ"), ("石井", "イシイ"), ("小川", "オガワ"),
            ("前田", "マエダ"), ("岡田", "オカダ"), ("長谷川", "ハセガワ"), ("藤田", "フジタ"), ("後藤", "ゴトウ"),
            ("近藤", "コンドウ"), ("村上", "ムラカミ"), ("遠藤", "エンドウ"), ("青木", "アオキ"), ("坂本", "サカモト")]
MALE = [("翔", "ショウ"), ("大輔", "ダイスケ"), ("健太", "ケンタ"), ("拓也", "タクヤ"), ("誠", "マコト"),
        ("浩", "ヒロシ"), ("隆", "タカシ"), ("修", "オサム"), ("蓮", "レン"), ("悠真", "ユウマ"),
        ("大翔", "ヒロト"), ("陽斗", "ハルト"), ("直樹", "ナオキ"), ("和也", "カズヤ"), ("茂", "シゲル"),
        ("博", "ヒロシ"), ("勝", "マサル"), ("清", "キヨシ"), ("亮", "リョウ"), ("颯太", "ソウタ")]
FEMALE = [("陽子", "ヨウコ"), ("恵子", "ケイコ"), ("美咲", "ミサキ"), ("さくら", "サクラ"), ("結衣", "ユイ"),
          ("愛", "アイ"), ("真由美", "マユミ"), ("久美子", "クミコ"), ("陽菜", "ヒナ"), ("葵", "アオイ"),
          ("凛", "リン"), ("芽依", "メイ"), ("裕子", "ユウコ"), ("直美", "ナオミ"), ("幸子", "サチコ"),
          ("和子", "カズコ"), ("明美", "アケミ"), ("由美", "ユミ"), ("彩", "アヤ"), ("美穂", "ミホ")]
TOWNS = ["本町", "栄町", "緑町", "幸町", "旭町", "中央", "東町", "西町", "南町", "北町"]
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
    detailed = full or i % 3 == 0
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
    if full:
        sex = row[6]
        surname = SURNAMES[rng.randrange(len(SURNAMES))]
        given = (MALE if sex == "male" or (sex == "unknown" and rng.randrange(2)) else FEMALE)
        given = given[rng.randrange(len(given))]
        row[4] = f"{surname[0]} {given[0]}"
        row[5] = f"{surname[1]} {given[1]}"
        # Born `age` whole years before the diagnosis date (the age at diagnosis), on any day.
        diagnosed = datetime.date(y, m + 1, d)
        age = int(row[7])
        latest = diagnosed.replace(year=diagnosed.year - age) if (diagnosed.month, diagnosed.day) != (2, 29) \
            else datetime.date(diagnosed.year - age, 2, 28)
        born = latest - datetime.timedelta(days=rng.randrange(365))
        row += [born.isoformat(), f"{100 + rng.randrange(900):03d}-{rng.randrange(10000):04d}",
                f"{TOWNS[rng.randrange(len(TOWNS))]}{1 + rng.randrange(9)}-{1 + rng.randrange(30)}-{1 + rng.randrange(20)}"]
        if rng.randrange(10) == 0:
            row[8] = ""
        if rng.randrange(5) == 0:
            row[9] = row[10] = ""
    out.write(",".join(row) + "\n")
