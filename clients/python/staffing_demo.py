"""Generate the staffing demo: candidates, job postings and placements as CSV.

    .venv/bin/python clients/python/staffing_demo.py demo/            # 200,000 candidates
    .venv/bin/python clients/python/staffing_demo.py demo/ --candidates 20000

Writes candidates.csv, jobs.csv and placements.csv, deterministic for a
given --seed. The data is made to be searched: every candidate has a role,
skills, certifications and a free-text summary that says them in words, so
that SQL filters (state, rate, availability) and, once embeddings land, text
search ("forklift operator with OSHA certification") both have something real
to find. Standard library only.
"""

import argparse
import csv
import datetime
import pathlib
import random

FIRST = ["Ana", "Ben", "Carla", "Deshawn", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kira", "Luis",
         "Maya", "Nikolai", "Olu", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Victor", "Wen", "Ximena",
         "Yusuf", "Zoe", "Aiden", "Beatriz", "Chen", "Dmitri", "Esther", "Femi", "Gustavo", "Hana", "Ivan", "Jade"]
LAST = ["Garcia", "Smith", "Nguyen", "Okafor", "Kowalski", "Patel", "Johnson", "Rossi", "Kim", "Haddad",
        "Martinez", "Brown", "Müller", "Silva", "O'Brien", "Tanaka", "Cohen", "Dubois", "Ivanova", "Mensah"]
CITIES = [("Chicago", "IL"), ("Joliet", "IL"), ("Rockford", "IL"), ("Houston", "TX"), ("Dallas", "TX"),
          ("El Paso", "TX"), ("Atlanta", "GA"), ("Savannah", "GA"), ("Columbus", "OH"), ("Cleveland", "OH"),
          ("Phoenix", "AZ"), ("Tucson", "AZ"), ("Memphis", "TN"), ("Nashville", "TN"), ("Newark", "NJ"),
          ("Reno", "NV"), ("Louisville", "KY"), ("Indianapolis", "IN"), ("Fresno", "CA"), ("Ontario", "CA")]

# role: (skills, certifications, rate range, summary phrases)
ROLES = {
    "Forklift Operator": (["forklift", "pallet jack", "inventory", "loading dock", "reach truck"],
                          ["OSHA forklift certification", "OSHA 10"], (17, 26),
                          ["operates sit-down and stand-up forklifts", "moves pallets safely in busy warehouses"]),
    "Warehouse Associate": (["picking", "packing", "RF scanner", "shipping", "receiving"],
                            ["OSHA 10"], (15, 21),
                            ["picks and packs orders with an RF scanner", "keeps receiving and shipping on schedule"]),
    "CNC Machinist": (["CNC", "G-code", "blueprint reading", "calipers", "Haas"],
                      ["NIMS Level I"], (22, 38),
                      ["sets up and runs CNC mills and lathes", "reads blueprints and holds tight tolerances"]),
    "Welder": (["MIG", "TIG", "stick welding", "fabrication", "blueprint reading"],
               ["AWS D1.1 welding certification"], (20, 36),
               ["welds structural steel with MIG and TIG", "fabricates parts from drawings"]),
    "CDL Truck Driver": (["CDL-A", "route planning", "ELD logs", "hazmat", "pre-trip inspection"],
                         ["CDL Class A", "Hazmat endorsement"], (24, 40),
                         ["drives regional and over-the-road routes", "keeps a clean safety record and accurate logs"]),
    "Certified Nursing Assistant": (["patient care", "vital signs", "EHR", "mobility assistance", "infection control"],
                                    ["CNA license", "CPR/BLS"], (16, 24),
                                    ["helps patients with daily living and mobility", "records vital signs in the EHR"]),
    "Medical Receptionist": (["scheduling", "EHR", "insurance verification", "customer service", "billing"],
                             ["CPR/BLS"], (15, 22),
                             ["checks in patients and verifies insurance", "manages a busy clinic schedule"]),
    "Electrician": (["wiring", "conduit bending", "NEC", "troubleshooting", "PLC"],
                    ["Journeyman electrician license", "OSHA 30"], (26, 45),
                    ["installs and troubleshoots commercial wiring", "bends conduit and works to NEC code"]),
    "Customer Service Representative": (["call center", "CRM", "de-escalation", "data entry", "bilingual Spanish"],
                                        [], (14, 22),
                                        ["answers customer calls and resolves issues", "logs every case in the CRM"]),
    "Software Developer": (["Python", "SQL", "JavaScript", "REST APIs", "cloud"],
                           ["AWS Certified Developer"], (40, 85),
                           ["builds web services and data pipelines", "writes tested Python and SQL"]),
    "Accountant": (["accounts payable", "reconciliation", "Excel", "QuickBooks", "month-end close"],
                   ["CPA"], (28, 55),
                   ["reconciles accounts and runs month-end close", "keeps the books in QuickBooks and Excel"]),
    "Line Cook": (["food prep", "grill", "ServSafe", "inventory", "knife skills"],
                  ["ServSafe Food Handler"], (15, 23),
                  ["preps and cooks on a busy line", "keeps a clean, safe station"]),
}
SHIFTS = ["day shift", "night shift", "weekends", "rotating shifts", "overtime"]
CLIENTS = ["Acme Logistics", "Midwest Fabrication", "Lakeside Health", "Summit Foods", "Prairie Freight",
           "Riverbend Clinic", "Northstar Manufacturing", "Bluewater Distribution", "Copperline Electric"]


def candidate_rows(n, rng, today):
    for i in range(1, n + 1):
        role = rng.choice(list(ROLES))
        skills, certs, (lo, hi), phrases = ROLES[role]
        city, state = rng.choice(CITIES)
        years = rng.randint(0, 25)
        picked = rng.sample(skills, k=rng.randint(2, len(skills)))
        held = [c for c in certs if rng.random() < 0.6]
        rate = round(rng.uniform(lo, hi) + years * 0.35, 2)
        available = today + datetime.timedelta(days=rng.randint(-30, 90))
        summary = (
            f"{role} with {years} year{'s' if years != 1 else ''} of experience in {city}, {state}; "
            f"{rng.choice(phrases)}. Skills: {', '.join(picked)}."
            + (f" Holds {' and '.join(held)}." if held else "")
            + f" Available for {rng.choice(SHIFTS)}."
        )
        yield [i, f"{rng.choice(FIRST)} {rng.choice(LAST)}", role, ";".join(picked), ";".join(held), city, state,
               years, f"{rate:.2f}", available.isoformat(), summary]


def job_rows(n, rng, today):
    for i in range(1, n + 1):
        role = rng.choice(list(ROLES))
        skills, certs, (lo, hi), phrases = ROLES[role]
        city, state = rng.choice(CITIES)
        need = rng.sample(skills, k=2)
        cert = rng.choice(certs) if certs and rng.random() < 0.5 else ""
        posted = today - datetime.timedelta(days=rng.randint(0, 120))
        client = rng.choice(CLIENTS)
        article = "an" if role[0] in "AEIOU" else "a"
        description = (
            f"{client} needs {article} {role} in {city}, {state} for {rng.choice(SHIFTS)}. "
            f"Must know {need[0]} and {need[1]}." + (f" {cert} required." if cert else "")
        )
        yield [i, role, client, city, state, f"{rng.uniform(lo, hi) + 2:.2f}",
               posted.isoformat(), rng.choice(["open", "open", "filled", "closed"]), description]


def placement_rows(n, candidates, jobs, rng, today):
    for i in range(1, n + 1):
        start = today - datetime.timedelta(days=rng.randint(0, 700))
        ended = rng.random() < 0.6
        end = (start + datetime.timedelta(days=rng.randint(7, 365))).isoformat() if ended else ""
        yield [i, rng.randint(1, candidates), rng.randint(1, jobs), start.isoformat(), end,
               f"{rng.uniform(14, 90):.2f}", rng.choice(["", "", "great fit", "no-show once", "extended twice"])]


def write(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(header)
        count = 0
        for row in rows:
            out.writerow(row)
            count += 1
    print(f"{path}: {count:,} rows, {path.stat().st_size / 1e6:.1f} MB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=pathlib.Path)
    parser.add_argument("--candidates", type=int, default=200_000)
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--placements", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    args.directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    today = datetime.date(2026, 11, 1)
    write(args.directory / "candidates.csv",
          ["candidate_id", "name", "role", "skills", "certifications", "city", "state", "years_experience",
           "hourly_rate", "available_from", "summary"],
          candidate_rows(args.candidates, rng, today))
    write(args.directory / "jobs.csv",
          ["job_id", "role", "client", "city", "state", "pay_rate", "posted_on", "status", "description"],
          job_rows(args.jobs, rng, today))
    write(args.directory / "placements.csv",
          ["placement_id", "candidate_id", "job_id", "started_on", "ended_on", "bill_rate", "notes"],
          placement_rows(args.placements, args.candidates, args.jobs, rng, today))


if __name__ == "__main__":
    main()
