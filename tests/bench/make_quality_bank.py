"""Write the quality-round question bank, ``assets/quality/questions.json``.

Run ``python -m tests.bench.make_quality_bank`` (``--check`` compares with the committed
file instead of writing). Deterministic: the same word lists, seed and encoder give the
same file.

Questions come from hand-written *units*: two or three phrasings of one statement, on ten
topics, some with a ``{n}`` slot for a person's name. A question asks for a unit's other
phrasing among four candidates: the paraphrase and three distractors, statements of other
units: in an easy question one on the same topic and two from other topics, in a hard one
all three on the same topic. Each distractor is the sentence of its pool that shares the
most words with the query, and questions a word-overlap answerer gets wrong are kept first:
overlap alone does not find the answer. *Trap* units pair two meanings of
one word (bass the instrument, bass the fish): there a distractor repeats the query's word
in its other meaning. Every sentence in a question shares one name, so names never give
the answer away. *Open* questions have four statements of other units on the query's topic
and no paraphrase: the answer is whatever the nodes agree on.

Then our encoder (all-MiniLM-L6-v2 on kernels.inference) answers every question; a
question is *known* only when the intended candidate wins by a cosine gap of at least
``MIN_MARGIN``. The others and the open questions go to the bank with ``answer: null``: the
unknown pool whose answers the coordinator learns from the nodes' consensus. Each question
but the open ones records its margin (negative when a distractor won).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kernels.backend import numpy_backend
from kernels.inference import MODEL_NAME, SentenceEncoder, find_model_dir, load_model
from kernels.inference.quality import BANK_FORMAT, BANK_NAME, load_bank

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "assets" / BANK_NAME
SEED = 20240611
MIN_MARGIN = 0.1
# Drawn from the plain units' pairs (every trap question is kept too): easy ones have one
# distractor on the question's topic, hard ones three.
EASY_QUESTIONS = 150
HARD_QUESTIONS = 80
# Open questions have no paraphrase among the candidates: always unknown.
OPEN_QUESTIONS = 60

NAMES = ("Anna", "Ben", "Carlos", "Dana", "Emil", "Fatima", "Grace", "Hiro", "Ines", "Jonas")

# topic -> units; a unit is its phrasings (same statement, different words).
TOPICS: dict[str, tuple[tuple[str, ...], ...]] = {
    "sport": (
        ("{n} scored the winning goal in the last minute.",
         "In the final minute, {n} netted the decisive goal.",
         "A late strike by {n} won the game."),
        ("{n} runs five kilometres every morning before work.",
         "Each day before the office, {n} goes for a 5 km jog.",
         "{n} jogs five km daily ahead of the working day."),
        ("The tennis final was postponed because of rain.",
         "Rain forced the organisers to delay the tennis championship match.",
         "Wet weather pushed back the deciding tennis match."),
        ("{n} broke the national record in the 100 metres.",
         "{n} set a new national best over 100 m.",
         "Nobody in the country has sprinted 100 metres faster than {n} did today."),
        ("The coach substituted {n} at half time.",
         "{n} was taken off by the manager during the break.",
         "At the interval, the coach replaced {n} with another player."),
        ("Our basketball team lost by two points.",
         "The basketball side was beaten by a two-point margin.",
         "We went down on the court by just two points."),
        ("{n} swims thirty laps in the pool every evening.",
         "Every evening {n} does thirty lengths of the swimming pool.",
         "{n} finishes thirty pool lengths each night."),
        ("The cyclists climbed the mountain stage in heavy heat.",
         "Riders tackled the mountain leg of the race in scorching temperatures.",
         "In blazing heat, the peloton rode up the alpine stage."),
        ("{n} was sent off for a dangerous tackle.",
         "The referee showed {n} a red card after a reckless challenge.",
         "{n} got a red card for a rough foul."),
        ("The marathon starts at seven in the morning.",
         "Runners set off on the marathon at 7 a.m.",
         "The 42 km race begins at seven a.m."),
    ),
    "cooking": (
        ("{n} chopped the onions and fried them in butter.",
         "{n} diced onions and sauteed them in butter.",
         "The onions were sliced by {n} and cooked in melted butter."),
        ("Bake the bread at two hundred degrees for forty minutes.",
         "Put the loaf in a 200-degree oven for forty minutes.",
         "The bread needs forty minutes in the oven at 200 degrees."),
        ("{n} added too much salt to the soup.",
         "The soup {n} made was far too salty.",
         "{n} over-salted the soup."),
        ("Let the dough rest for an hour before shaping it.",
         "Leave the dough to rise for sixty minutes, then shape it.",
         "The dough should sit for an hour prior to being formed."),
        ("{n} is making pasta with tomato sauce for dinner.",
         "For supper, {n} is cooking spaghetti in a tomato sauce.",
         "Tonight {n} prepares noodles with a red tomato sauce."),
        ("Whisk the eggs and sugar until the mixture turns pale.",
         "Beat the sugar with the eggs until it becomes light in colour.",
         "Keep whisking eggs and sugar until the mix is pale and fluffy."),
        ("The rice burned because {n} forgot to stir it.",
         "{n} did not stir the rice, so it scorched on the bottom of the pot.",
         "Left unstirred, the rice {n} was cooking got burnt."),
        ("Marinate the chicken overnight in garlic and lemon.",
         "Leave the chicken soaking in lemon juice and garlic until the next day.",
         "The chicken should sit in a garlic and lemon marinade all night."),
        ("{n} peeled the potatoes and boiled them until soft.",
         "{n} skinned the potatoes and cooked them in boiling water until tender.",
         "After peeling them, {n} boiled the potatoes until they were soft."),
        ("Serve the salad with olive oil and a little vinegar.",
         "Dress the salad with olive oil and a splash of vinegar before serving.",
         "The salad is served with a drizzle of olive oil and some vinegar."),
    ),
    "weather": (
        ("Heavy snow is expected in the mountains tonight.",
         "Forecasters predict a lot of snowfall in the hills overnight.",
         "Tonight the mountains will get a thick layer of snow."),
        ("It has not rained here for three months.",
         "There has been no rainfall in this area for a quarter of a year.",
         "We have had a three-month dry spell without any rain."),
        ("A strong wind knocked down trees across the city.",
         "Gales toppled trees all over town.",
         "Trees fell throughout the city in the powerful wind."),
        ("Tomorrow will be sunny and warm, around twenty-five degrees.",
         "Expect clear skies and about 25 degrees tomorrow.",
         "The forecast for tomorrow is sunshine and a warm 25 degrees."),
        ("Thick fog closed the airport this morning.",
         "Flights were halted this morning because dense fog covered the airport.",
         "The airport shut this morning due to heavy fog."),
        ("A thunderstorm with hail hit the village last night.",
         "Last night the village was struck by a storm with lightning and hailstones.",
         "Hail and thunder battered the village overnight."),
        ("Temperatures will drop below freezing after sunset.",
         "Once the sun goes down it will fall under zero degrees.",
         "After dusk the temperature will sink below zero."),
        ("The river flooded after a week of heavy rain.",
         "Seven days of downpours made the river burst its banks.",
         "A week of torrential rain caused the river to overflow."),
        ("{n} checked the forecast and took an umbrella.",
         "After looking at the weather report, {n} brought an umbrella.",
         "{n} saw that rain was predicted and carried an umbrella."),
        ("The heatwave is the longest on record.",
         "This spell of extreme heat has lasted longer than any before it.",
         "Never before has a heatwave gone on for so long."),
    ),
    "code": (
        ("{n} fixed a bug that crashed the app on startup.",
         "{n} resolved the defect that made the application crash when launching.",
         "Thanks to {n}, the app no longer crashes as soon as it starts."),
        ("The function returns null when the list is empty.",
         "Given an empty list, the method gives back a null value.",
         "For an empty list, the function's result is null."),
        ("{n} wrote unit tests for the login module.",
         "{n} added automated tests covering the sign-in code.",
         "The login code now has unit tests written by {n}."),
        ("The database query is too slow and needs an index.",
         "Adding an index would speed up the sluggish SQL query.",
         "Without an index, the database lookup takes far too long."),
        ("Please review my pull request before we merge it.",
         "Could you look over my code changes before they are merged?",
         "Before merging, I would like you to check my pull request."),
        ("The server ran out of memory and restarted.",
         "Memory was exhausted on the server, so it rebooted.",
         "The machine rebooted after using up all its RAM."),
        ("{n} refactored the code to remove duplicated logic.",
         "{n} restructured the program so the same logic is no longer repeated.",
         "{n} cleaned up the codebase by eliminating copy-pasted logic."),
        ("The build fails because a dependency is missing.",
         "Compilation breaks since one of the required libraries is not installed.",
         "A missing package makes the build fail."),
        ("Store the password as a salted hash, never in plain text.",
         "Passwords must be hashed with a salt rather than kept as readable text.",
         "Never save passwords in clear text; keep only a salted hash."),
        ("{n} deployed the new version to production on Friday.",
         "On Friday {n} released the latest build to the live servers.",
         "The new release went to production on Friday, shipped by {n}."),
    ),
    "travel": (
        ("{n} missed the flight because the train was late.",
         "The delayed train made {n} miss the plane.",
         "{n} did not catch the flight since the train ran behind schedule."),
        ("Our hotel room has a view of the sea.",
         "From the hotel room we can see the ocean.",
         "The room we booked at the hotel looks out over the sea."),
        ("{n} lost the passport at the airport.",
         "The passport of {n} went missing in the terminal.",
         "At the airport, {n} could not find the passport anymore."),
        ("We rented a car to drive along the coast.",
         "We hired a car for a road trip by the seaside.",
         "To travel down the coastal road, we got a rental car."),
        ("The museum is closed on Mondays.",
         "You cannot visit the museum on a Monday.",
         "On Mondays the museum does not open."),
        ("{n} booked a cheap hostel in the old town.",
         "{n} reserved a budget hostel in the historic centre.",
         "An inexpensive hostel in the old quarter was booked by {n}."),
        ("The ferry to the island leaves every two hours.",
         "Boats to the island depart at two-hour intervals.",
         "Every two hours a ferry sails to the island."),
        ("You need a visa to enter the country.",
         "Entry into this country requires a visa.",
         "Travellers must have a visa to get into the country."),
        ("{n} packed a suitcase for a two-week holiday.",
         "{n} filled a bag with clothes for a fortnight of vacation.",
         "For the two weeks away, {n} got a suitcase ready."),
        ("The tour guide showed us the ancient ruins.",
         "Our guide led us around the old ruins.",
         "We were taken to see the ancient remains by a guide."),
    ),
    "music": (
        ("{n} plays the violin in the city orchestra.",
         "{n} is a violinist with the municipal symphony.",
         "In the city's orchestra, {n} plays violin."),
        ("The band released a new album last week.",
         "Last week the group put out their latest record.",
         "A new album by the band came out a week ago."),
        ("{n} practises the piano for two hours every day.",
         "Every day {n} spends two hours practising at the piano.",
         "{n} does two hours of piano practice daily."),
        ("The concert sold out in ten minutes.",
         "All tickets for the show were gone within ten minutes.",
         "It took only ten minutes for the concert to sell out."),
        ("This song is in a minor key and sounds sad.",
         "The tune is written in minor, which gives it a melancholy sound.",
         "Being in a minor key, the song has a sad feel."),
        ("{n} sings in a church choir on Sundays.",
         "On Sundays {n} is part of the choir at church.",
         "Every Sunday {n} joins the church choir to sing."),
        ("The drummer kept a steady beat all night.",
         "All evening the percussionist held a steady rhythm.",
         "Throughout the night the drums never lost the beat."),
        ("{n} is learning to read sheet music.",
         "{n} is being taught how to read musical notation.",
         "Reading written music is something {n} is now learning."),
        ("The festival features jazz and blues bands.",
         "Jazz and blues groups are performing at the festival.",
         "At the festival you can hear blues and jazz bands."),
        ("{n} tuned the guitar before the show.",
         "Before the gig, {n} got the guitar strings in tune.",
         "{n} adjusted the tuning of the guitar ahead of the concert."),
    ),
    "animals": (
        ("The cat sleeps on the windowsill all afternoon.",
         "All afternoon the cat naps by the window.",
         "The cat spends the afternoon asleep on the window ledge."),
        ("{n}'s dog barks whenever the postman comes.",
         "Every time the mail carrier arrives, the dog of {n} starts barking.",
         "The dog that {n} owns barks at the postman each time."),
        ("Elephants travel long distances to find water.",
         "Elephants walk for miles in search of water.",
         "To reach water, elephants cover great distances."),
        ("Bees collect nectar from flowers to make honey.",
         "Honey is made by bees from the nectar they gather from blossoms.",
         "Bees gather nectar from flowers and turn it into honey."),
        ("The owl hunts mice at night.",
         "At night the owl catches mice.",
         "Owls prey on mice after dark."),
        ("{n} adopted a kitten from the shelter.",
         "{n} took home a young cat from the animal rescue.",
         "A kitten from the animal shelter now lives with {n}."),
        ("Salmon swim upstream to lay their eggs.",
         "Salmon head up the river to spawn.",
         "To lay eggs, salmon travel against the current."),
        ("The horse jumped over the fence and ran away.",
         "The horse leapt the fence and escaped.",
         "Clearing the fence in one jump, the horse ran off."),
        ("Penguins cannot fly but they swim very well.",
         "Penguins are flightless, yet excellent swimmers.",
         "Although penguins are unable to fly, they are great in the water."),
        ("{n} feeds the ducks at the pond every weekend.",
         "Each weekend {n} gives bread to the ducks on the pond.",
         "On weekends, {n} goes to the pond to feed the ducks."),
    ),
    "finance": (
        ("The central bank raised interest rates by half a percent.",
         "Interest rates were increased by 0.5 percent by the central bank.",
         "The central bank lifted borrowing costs by half a point."),
        ("{n} saves a fifth of the salary every month.",
         "Each month {n} puts twenty percent of the pay aside.",
         "{n} sets aside one fifth of the monthly wage."),
        ("Share prices fell sharply after the report.",
         "Stocks dropped steeply following the announcement.",
         "The report sent the stock market tumbling."),
        ("{n} took out a loan to buy a house.",
         "{n} borrowed money from a lender to purchase a home.",
         "To buy a house, {n} got a mortgage."),
        ("Inflation reached its highest level in ten years.",
         "Prices are rising faster than at any time in a decade.",
         "The inflation rate hit a ten-year high."),
        ("The company's profits doubled this year.",
         "This year the firm earned twice as much profit.",
         "Earnings at the company have grown twofold this year."),
        ("{n} pays the rent on the first of each month.",
         "On the first day of every month {n} transfers the rent.",
         "The rent is paid by {n} at the start of each month."),
        ("You should spread your investments to reduce risk.",
         "Diversifying your portfolio lowers risk.",
         "To cut risk, do not put all your money in one investment."),
        ("The tax return must be filed by April.",
         "Tax forms are due before the end of April.",
         "April is the deadline for submitting your tax return."),
        ("{n}'s credit card was charged twice for the same purchase.",
         "{n} was billed two times for one purchase on the card.",
         "A single purchase appeared twice on the credit card of {n}."),
    ),
    "health": (
        ("{n} has a fever and a sore throat.",
         "{n} is running a high temperature and the throat hurts.",
         "With a painful throat, {n} also has a fever."),
        ("Drink plenty of water to stay healthy.",
         "Keep yourself well hydrated for good health.",
         "Drinking lots of water is good for your body."),
        ("The doctor prescribed antibiotics for the infection.",
         "The physician gave medicine to treat the bacterial infection.",
         "To cure the infection, the doctor ordered a course of antibiotics."),
        ("{n} broke an arm falling off a ladder.",
         "{n} fractured an arm after tumbling from a ladder.",
         "A fall from a ladder left {n} with a broken arm."),
        ("Getting eight hours of sleep improves your memory.",
         "A full night's sleep helps you remember things better.",
         "Sleeping eight hours a night makes memory work better."),
        ("{n} has an appointment with the dentist tomorrow.",
         "Tomorrow {n} is seeing the dentist.",
         "{n} is booked in for a dental check-up tomorrow."),
        ("Washing your hands helps stop the spread of germs.",
         "Hand washing prevents germs from spreading.",
         "Clean hands keep germs from passing between people."),
        ("Regular exercise lowers blood pressure.",
         "Working out often reduces blood pressure.",
         "Blood pressure goes down when you exercise regularly."),
        ("{n} is allergic to peanuts.",
         "Peanuts give {n} an allergic reaction.",
         "{n} has a peanut allergy."),
        ("The nurse took a blood sample.",
         "A nurse drew some blood for testing.",
         "Blood was taken by the nurse to be tested."),
    ),
    "gardening": (
        ("{n} planted tomatoes in the back garden.",
         "{n} put tomato plants in the yard behind the house.",
         "Tomatoes were planted by {n} in the garden at the back."),
        ("Water the seedlings every morning.",
         "The young plants need watering each morning.",
         "Give the seedlings water every day in the morning."),
        ("Slugs ate all the lettuce leaves.",
         "The lettuce was devoured by slugs.",
         "Every lettuce leaf was eaten by slugs."),
        ("Prune the roses in late winter.",
         "Cut back the rose bushes at the end of winter.",
         "Rose bushes should be trimmed when winter is ending."),
        ("{n} mowed the lawn on Saturday.",
         "On Saturday {n} cut the grass.",
         "The lawn was mown by {n} at the weekend, on Saturday."),
        ("Compost makes the soil richer.",
         "Adding compost improves the soil.",
         "Soil becomes more fertile with compost mixed in."),
        ("The apple tree is full of fruit this year.",
         "This year the apple tree is heavy with apples.",
         "Our apple tree has a big crop this year."),
        ("{n} pulled the weeds from the flower bed.",
         "{n} removed weeds from the flower bed.",
         "The flower bed was weeded by {n}."),
        ("Sunflowers grow taller than a person.",
         "Sunflowers can get higher than a human.",
         "A sunflower may grow above the height of a man."),
        ("Plant the bulbs in autumn for flowers in spring.",
         "Put the bulbs in the ground in the fall so they bloom in spring.",
         "Bulbs planted in autumn will flower the following spring."),
    ),
}  # fmt: skip

# One word, two meanings: (topic, phrasing with the word, paraphrase without it) each.
TRAPS: tuple[tuple[tuple[str, str, str], tuple[str, str, str]], ...] = (
    (("music", "{n} plays bass in a rock band.", "{n} is the bassist of a rock group."),
     ("animals", "{n} caught a huge bass in the lake.", "{n} pulled a big fish out of the lake.")),
    (("finance", "{n} opened a savings account at the bank.",
      "{n} started a deposit account with a lender."),
     ("travel", "We had a picnic on the bank of the river.",
      "We ate lunch outdoors at the riverside.")),
    (("code", "{n} wrote the script in Python.", "{n} coded the program in the Python language."),
     ("animals", "A python swallowed a whole rabbit.",
      "The large snake ate a rabbit in one piece.")),
    (("sport", "{n} swung the bat and hit the ball.", "{n} struck the ball with a cricket swing."),
     ("animals", "A bat flew out of the cave at dusk.",
      "At dusk a small flying mammal left the cave.")),
    (("code", "Click the button with the mouse.", "Use the pointer to press the on-screen button."),
     ("animals", "A mouse ran across the kitchen floor.",
      "A little rodent scurried over the kitchen floor.")),
    (("code", "There is a bug in the payment code.", "The payment software has a defect."),
     ("animals", "A bug crawled up the wall.", "A small insect climbed the wall.")),
    (("sport", "The players walked onto the pitch.", "The team came out onto the football field."),
     ("music", "{n} sings with perfect pitch.", "The singing of {n} is always exactly in tune.")),
    (("cooking", "{n} spread strawberry jam on toast.",
      "{n} put strawberry preserve on a slice of toast."),
     ("travel", "We were stuck in a traffic jam for an hour.",
      "Congested roads held us up for an hour.")),
    (("health", "{n} caught a cold and stayed in bed.",
      "{n} got sick with a chill and remained in bed."),
     ("weather", "It is very cold outside this morning.", "The air is freezing today.")),
    (("animals", "A crane stood in the shallow water.",
      "A tall wading bird waited in the shallows."),
     ("travel", "A crane lifted the containers off the ship.",
      "The cargo boxes were hoisted from the vessel by a machine.")),
    (("music", "{n} practised the C major scale.", "{n} played the notes of C major up and down."),
     ("cooking", "{n} weighed the flour on the kitchen scale.",
      "{n} measured the flour by weight.")),
    (("finance", "It is a bear market and stocks keep falling.",
      "Share prices are in a long decline."),
     ("animals", "A bear was searching for food in the forest.",
      "A large wild animal looked for something to eat among the trees.")),
    (("sport", "{n} set a world record in the long jump.",
      "{n} jumped further than anyone ever has."),
     ("music", "{n} bought an old vinyl record.", "{n} purchased a used LP.")),
    (("music", "The song changes key in the last chorus.",
      "In the final chorus the tune modulates."),
     ("travel", "{n} left the room key at the hotel reception.",
      "{n} handed the hotel room card in at the front desk.")),
    (("music", "{n} held the high note for ten seconds.",
      "{n} sustained the top tone for ten seconds while singing."),
     ("finance", "{n} paid with a twenty-pound note.", "{n} handed over a twenty-pound bill.")),
    (("animals", "The elephant lifted the log with its trunk.",
      "Using its long nose, the elephant raised the log."),
     ("travel", "{n} put the luggage in the trunk of the car.",
      "{n} loaded the bags into the back of the car.")),
    (("code", "The backend is written in Java.", "Our server code uses the Java language."),
     ("cooking", "{n} drinks a cup of java every morning.", "{n} has coffee each morning.")),
    (("code", "The website stores a cookie in your browser.",
      "The site saves a small tracking file in the browser."),
     ("cooking", "{n} baked chocolate chip cookies.", "{n} made biscuits with chocolate chips.")),
    (("music", "{n} drew the bow across the cello strings.", "{n} played the cello with a bow."),
     ("sport", "{n} shot an arrow from the bow at the target.",
      "{n} fired an arrow at the target in archery.")),
    (("sport", "The players ran onto the tennis court.",
      "The tennis players stepped onto the playing surface."),
     ("finance", "{n} had to appear in court over unpaid taxes.",
      "{n} was summoned before a judge for tax debts.")),
    (("animals", "A fly landed on the sugar bowl.", "An insect settled on the sugar bowl."),
     ("travel", "We fly to Lisbon on Tuesday.", "Our flight to Lisbon is on Tuesday.")),
    (("animals", "A seal was resting on the rocks.", "A sea mammal lay on the rocks."),
     ("cooking", "Seal the jar tightly after opening.", "Close the jar firmly once you open it.")),
    (("finance", "{n} bought stock in a tech company.",
      "{n} purchased shares of a technology firm."),
     ("cooking", "Make the soup with chicken stock.", "Use chicken broth as the soup base.")),
    (("code", "The results are saved in a database table.",
      "The data goes into a table in the database."),
     ("cooking", "{n} set the table for dinner.", "{n} laid out plates and cutlery for the meal.")),
    (("code", "Run the command in a shell.", "Type the command into a terminal."),
     ("animals", "The turtle hid inside its shell.",
      "The tortoise pulled its head into its hard covering.")),
    (("code", "The new chip makes the laptop faster.",
      "The laptop runs quicker with the new processor."),
     ("cooking", "{n} ordered fish and chips.", "{n} ordered fried fish with French fries.")),
    (("finance", "{n} left a generous tip for the waiter.",
      "{n} gave the server a large gratuity."),
     ("cooking", "Cut the tips off the asparagus.", "Trim the ends of the asparagus spears.")),
    (("weather", "Big waves crashed on the beach during the storm.",
      "The storm drove large breakers onto the shore."),
     ("sport", "{n} waved to the crowd after the race.",
      "{n} greeted the spectators with a raised hand after running.")),
)  # fmt: skip


@dataclass(frozen=True)
class Draft:
    """A question before encoding: the intended answer is candidate 0 (``open``: none)."""

    query: str
    candidates: tuple[str, ...]
    open: bool = False


def _fill(text: str, name: str) -> str:
    return text.replace("{n}", name)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _overlap(a: str, b: str) -> float:
    """Word overlap (Jaccard): what a lexical answerer would go by."""
    wa, wb = _words(a), _words(b)
    return len(wa & wb) / len(wa | wb)


def _lexical_pick(query: str, pool: Sequence[str]) -> str:
    """The sentence of ``pool`` sharing the most words with ``query`` (ties: the first):
    the distractor a bag-of-words answerer falls for."""
    return max(pool, key=lambda text: _overlap(query, text))


def _lexical_answer(draft: Draft) -> int:
    """The candidate a bag-of-words answerer picks (ties: the first)."""
    scores = [_overlap(draft.query, text) for text in draft.candidates]
    return scores.index(max(scores))


def _plain_drafts(rng: random.Random) -> list[Draft]:
    pairs = [
        (topic, u, i, j)
        for topic, units in TOPICS.items()
        for u, unit in enumerate(units)
        for i in range(len(unit))
        for j in range(len(unit))
        if i != j
    ]
    rng.shuffle(pairs)
    half = len(pairs) // 2
    easy = [_plain_draft(rng, pair, 1) for pair in pairs[:half]]
    hard = [_plain_draft(rng, pair, 3) for pair in pairs[half:]]
    return _prefer_unlexical(easy, EASY_QUESTIONS) + _prefer_unlexical(hard, HARD_QUESTIONS)


def _prefer_unlexical(drafts: list[Draft], count: int) -> list[Draft]:
    """``count`` drafts, those a bag-of-words answerer gets wrong first (adversarial
    filtering: what is left to tell the answer is meaning)."""
    fooled = [d for d in drafts if _lexical_answer(d) != 0]
    return (fooled + [d for d in drafts if _lexical_answer(d) == 0])[:count]


def _plain_draft(rng: random.Random, pair: tuple[str, int, int, int], same_topic: int) -> Draft:
    topic, u, i, j = pair
    units = TOPICS[topic]
    name = rng.choice(NAMES)
    query = _fill(units[u][i], name)
    same = rng.sample([k for k in range(len(units)) if k != u], same_topic)
    others = rng.sample([t for t in TOPICS if t != topic], 3 - same_topic)
    pools: list[Sequence[str]] = [units[k] for k in same]
    pools += [[text for unit in TOPICS[other] for text in unit] for other in others]
    distractors = [_lexical_pick(query, [_fill(text, name) for text in pool]) for pool in pools]
    return _draft(units[u][i], units[u][j], distractors, name)


def _open_drafts(rng: random.Random, count: int) -> list[Draft]:
    drafts: list[Draft] = []
    topics = list(TOPICS)
    for _ in range(count):
        units = TOPICS[rng.choice(topics)]
        u, *others = rng.sample(range(len(units)), 5)
        name = rng.choice(NAMES)
        query, *candidates = (rng.choice(units[k]) for k in (u, *others))
        draft = _draft(query, candidates[0], candidates[1:], name)
        drafts.append(Draft(draft.query, draft.candidates, open=True))
    return drafts


def _trap_drafts(rng: random.Random) -> list[Draft]:
    drafts: list[Draft] = []
    for first, second in TRAPS:
        for mine, theirs in ((first, second), (second, first)):
            topic, worded, plain = mine
            for query, answer in ((worded, plain), (plain, worded)):
                units = TOPICS[topic]
                other_topic = rng.choice([t for t in TOPICS if t not in (topic, theirs[0])])
                name = rng.choice(NAMES)
                pools = [units, TOPICS[other_topic]]
                distractors = [theirs[1]]  # the same word in its other meaning
                distractors += [
                    _lexical_pick(_fill(query, name), [_fill(t, name) for u in p for t in u])
                    for p in pools
                ]
                drafts.append(_draft(query, answer, distractors, name))
    return drafts


def _draft(query: str, answer: str, distractors: Sequence[str], name: str) -> Draft:
    candidates = tuple(_fill(text, name) for text in (answer, *distractors))
    if len(set(candidates)) != len(candidates) or _fill(query, name) in candidates:
        raise AssertionError(f"repeated text in a question: {query!r} {candidates!r}")
    return Draft(_fill(query, name), candidates)


def margins(drafts: Sequence[Draft]) -> list[float]:
    """Cosine of the query to the intended candidate minus the best distractor's."""
    texts = sorted({t for d in drafts for t in (d.query, *d.candidates)})
    row = {text: i for i, text in enumerate(texts)}
    model = load_model(find_model_dir(), numpy_backend())
    with SentenceEncoder(model, workers=1) as encoder:
        vectors = encoder.encode(texts).astype(np.float64)
    result: list[float] = []
    for draft in drafts:
        query = vectors[row[draft.query]]
        sims = [float(vectors[row[c]] @ query) for c in draft.candidates]
        result.append(sims[0] - max(sims[1:]))
    return result


def build() -> str:
    """The bank's JSON text."""
    rng = random.Random(SEED)
    drafts = _plain_drafts(rng)
    drafts += _trap_drafts(rng) + _open_drafts(rng, OPEN_QUESTIONS)
    gaps = margins(drafts)
    order = list(range(len(drafts)))
    rng.shuffle(order)
    lines: list[str] = []
    for number, k in enumerate(order):
        draft, gap = drafts[k], round(gaps[k], 3)
        places = list(range(len(draft.candidates)))
        rng.shuffle(places)  # places[p] = the draft candidate shown at position p
        item: dict[str, object] = {
            "id": f"q{number:04d}",
            "query": draft.query,
            "candidates": [draft.candidates[p] for p in places],
            "answer": places.index(0) if gap >= MIN_MARGIN and not draft.open else None,
        }
        if not draft.open:
            item["margin"] = gap
        lines.append(json.dumps(item, ensure_ascii=False))
    header = {
        "format": BANK_FORMAT,
        "model": MODEL_NAME,
        "min_margin": MIN_MARGIN,
        "generator": "tests/bench/make_quality_bank.py",
    }
    head = json.dumps(header, ensure_ascii=False)[:-1]
    return head + ', "questions": [\n' + ",\n".join(lines) + "\n]}\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = build()
    if args.check:
        same = args.output.is_file() and args.output.read_text("utf-8") == text
        print(f"{args.output}: {'up to date' if same else 'differs from the generator'}")
        return 0 if same else 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    bank = load_bank(args.output)
    known = [q for q in bank if q.answer is not None]
    lexical = sum(_lexical_answer(Draft(q.query, q.candidates)) == q.answer for q in known)
    size = args.output.stat().st_size
    print(
        f"{args.output}: {len(bank)} questions, {len(known)} known, {size:,} bytes; "
        f"a word-overlap answerer gets {lexical}/{len(known)} known right"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
