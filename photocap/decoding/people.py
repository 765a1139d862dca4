"""The words that name people: what the person gate keeps out of a caption without evidence of one."""

from __future__ import annotations

_ONE_MANY = (
    ("person", "people"), ("man", "men"), ("woman", "women"), ("child", "children"), ("boy", "boys"),
    ("girl", "girls"), ("kid", "kids"), ("baby", "babies"), ("toddler", "toddlers"), ("guy", "guys"),
    ("lady", "ladies"), ("gentleman", "gentlemen"), ("player", "players"), ("rider", "riders"),
    ("skier", "skiers"), ("surfer", "surfers"), ("skateboarder", "skateboarders"),
    ("snowboarder", "snowboarders"), ("biker", "bikers"), ("cyclist", "cyclists"),
    ("bicyclist", "bicyclists"), ("climber", "climbers"), ("swimmer", "swimmers"), ("runner", "runners"),
    ("dancer", "dancers"), ("teenager", "teenagers"), ("adult", "adults"), ("youngster", "youngsters"),
    ("crowd", "crowds"), ("couple", "couples"), ("family", "families"), ("team", "teams"),
    ("someone", "someone"), ("student", "students"), ("worker", "workers"), ("chef", "chefs"),
    ("cook", "cooks"), ("tourist", "tourists"), ("pedestrian", "pedestrians"), ("spectator", "spectators"),
    ("athlete", "athletes"), ("bride", "brides"), ("groom", "grooms"), ("soldier", "soldiers"),
    ("policeman", "policemen"), ("officer", "officers"), ("he", "he"), ("she", "she"),
    ("his", "his"), ("her", "her"), ("they", "they"), ("their", "their"),
)
PERSON_WORDS: tuple[str, ...] = tuple(dict.fromkeys(w for pair in _ONE_MANY for w in pair))
