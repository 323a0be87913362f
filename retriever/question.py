"""The question, analysed once at the edge of retrieval.

``analyse(text)`` reads a question (Chinese in either script, or English) into
one immutable ``Question``: the text folded to Simplified script, its BM25
terms and character bigrams, the kind of answer it expects and the unit that
answer should carry, the places and other names it mentions, and its
language. Retrieval, the evidence rerank and the answerer all read this
object; none of them re-derives what is here.

Content-free input (emoji, punctuation, control or zero-width characters,
template or SQL strings) is recognised here too, so it can be refused before
retrieval (``check_content``).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass

from ingest.errors import BadQueryError
from ingest.script import fold_script
from ingest.tokenize import tokenize

from .gazetteer import places_in_english
from .numbers import parse_number
from .rerank import QUESTION_WORDS, question_bigrams

# ---- answer kinds ----------------------------------------------------------------
# One vocabulary for what a question asks for; eval reports per kind.
KINDS = ("count", "money", "percent", "duration", "date", "person", "place", "org", "title", "list",
         "yesno", "description", "entity", "other")

_HAN = "\u3400-\u9fff\uf900-\ufaff"
_CJK = re.compile(f"[{_HAN}]")

# Measure words and units a count may carry (longest first when matched).
UNITS = tuple(sorted(set("""
    个工作日 工作日 个百分点 百分点 标准箱 万标箱 标箱 人次 万人次 批次 架次 车次 户次 件次 千瓦时 万千瓦 千瓦 兆瓦
    平方公里 平方千米 平方米 立方米 公里 千米 公顷 公斤 公尺 公分 英里 英尺 毫米 厘米 海里 小时 分钟 个月 周岁
    万元 亿元 千元 美元 欧元 港元 元 吨 万吨 亿吨 亩 万亩 米 天 年 月 日 周 秒 岁 倍 成 度
    个 名 人 位 家 项 次 所 座 条 台 辆 户 件 批 张 册 场 级 处 套 支 种 类 篇 期 组 间 栋 层 届 部 本 份 列 架 艘
    只 头 株 棵 元 斤 升 克 片 首 枚 颗 根 块 台套 处 口 集 章 节 轮 例 单 笔 宗 起 桩 道 段 孔 眼 座 所
    """.split()), key=len, reverse=True))
_UNIT_RE = "|".join(map(re.escape, UNITS))

_ZH_KIND_PATTERNS: tuple[tuple[str, re.Pattern], ...] = (
    ("date", re.compile(r"何时|什么时候|什么时间|哪一?天|哪一?年|哪个?月|哪[个一]?(?:时间|日子|时期|年代|年份)|几月|几号|几日"
                        r"|何年|日期是|(?:始|成立|建|开|创|发生|举行|举办|通车|竣工|完成|出生|去世)于?(?:哪|何|什么)")),
    ("duration", re.compile(r"多久|多长时间|多少(?:个)?(?:年|天|小时|分钟|秒|周|个月|工作日)(?!前|后|份)|几(?:个)?(?:年|天|小时|分钟|周|个月|工作日)"
                            r"(?!前|后|份)|期限|时限是|时长|历时多|耗时多|用时多")),
    ("percent", re.compile(r"百分之几|百分比|占比|比例|比重|几成|多少成|[率]是?(?:多少|几)|[率]为(?:多少|几)|[率]达到?(?:多少|了多少)"
                           r"|多少%|增长了?多少|下降了?多少|提高了?多少个百分点")),
    ("money", re.compile(r"多少钱|多少(?:万|亿|千)?元|多少美元|(?:金额|价格|票价|资金|投资|投入|收入|工资|费用|补助|补贴|花费|成本|奖金|"
                         r"罚款|预算|营收|利润|税|贷款|融资|资助|奖励)(?:[^，。？?]{0,6})(?:多少|几)|花了多少|赚了多少|拨付了?多少")),
    ("list", re.compile(r"哪些|哪几|有什么(?:方面|内容|措施|举措|项目|类型|种类)|包括什么|包含什么")),
    ("count", re.compile(r"多少|几(?![乎何经度])|多[大高长重远深宽厚]")),
    ("title", re.compile(r"(?:什么|哪个|哪些|何种)(?:荣誉称号|荣誉|称号|奖项|奖|头衔|称谓|名号|殊荣|奖章|勋章)|荣获了?(?:什么|哪)"
                         r"|被(?:评为|授予|命名为|称为|誉为)了?(?:什么|哪)")),
    ("person", re.compile(r"谁|哪位|哪一位|什么人|何人")),
    ("place", re.compile(r"哪[个座一]?(?:省|市|县|区|城市|地方|地区|村|州|国家?|镇|乡|街道|片区)|哪里|哪儿|何地|何处|什么地方|在哪")),
    ("org", re.compile(r"哪[个家一所]?(?:部门|单位|机构|组织|企业|公司|学校|大学|医院|银行|协会|团队|队伍|机关|集团)|哪家")),
    ("description", re.compile(r"为什么|为何|如何|怎样|怎么|什么是|是什么意思|什么意思|指什么|指的是什么|定义|区别|"
                               r"哪些方面|作用是|意义|寓意|原因|目的是|做法|怎么办")),
    ("yesno", re.compile(r"是否|是不是|有没有|能不能|会不会|可不可以|可否|吗[？?]?$")),
    ("entity", re.compile(r"什么|哪|叫")),
)
_EN_KIND_PATTERNS: tuple[tuple[str, re.Pattern], ...] = (
    ("date", re.compile(r"\bwhen\b|\bwhat (?:date|day|year|month|time)\b|\bwhich (?:date|day|year|month)\b|\bin what year\b", re.I)),
    ("duration", re.compile(r"\bhow long (?:did|does|will|would|is it|was it|has|have|do)\b|\bhow many (?:years|days|months|hours|"
                            r"minutes|weeks|working days)\b|\bhow much time\b", re.I)),
    ("percent", re.compile(r"\bwhat (?:percentage|percent|share|proportion|rate|ratio)\b|\bhow (?:high|low) (?:is|was) the \w+ rate\b"
                           r"|\brate\b.*\bwhat\b|\bwhat\b.*\brate\b|\bpercentage\b", re.I)),
    ("money", re.compile(r"\bhow much (?:money|did .* cost|does .* cost|was .* worth|funding|investment)\b|\bcost\b|\bprice\b|\bfare\b"
                         r"|\bsubsid|\binvest|\bfund|\byuan\b|\bdollars?\b|\bbudget\b|\bspend\b|\bspent\b", re.I)),
    ("count", re.compile(r"\bhow (?:many|much|long|large|high|far|big|tall|deep|wide|old)\b|\bwhat (?:number|amount)\b|\bnumber of\b", re.I)),
    ("title", re.compile(r"\bwhat (?:title|award|honou?r|prize)\b|\bwhich (?:title|award|honou?r|prize)\b", re.I)),
    ("list", re.compile(r"\bwhat (?:kinds?|types?|sorts?) of\b|\bwhich (?:kinds?|types?)\b|\blist\b", re.I)),
    ("person", re.compile(r"\bwho\b|\bwhom\b|\bwhose\b", re.I)),
    ("place", re.compile(r"\bwhere\b|\bwhich (?:province|city|county|region|village|town|country|place|district)\b", re.I)),
    ("org", re.compile(r"\bwhich (?:department|agency|organi[sz]ation|company|firm|school|university|hospital|bank|team)\b", re.I)),
    ("description", re.compile(r"\bwhy\b|\bhow\b(?! (?:many|much|long|large|high|far|big|tall|deep|wide|old))|\bexplain\b|\bdescribe\b"
                               r"|\bwhat is meant\b|\bpurpose\b|\breason\b", re.I)),
    ("yesno", re.compile(r"^\s*(?:is|are|was|were|do|does|did|can|could|has|have|had|will|would|should)\b", re.I)),
    ("entity", re.compile(r"\bwhat\b|\bwhich\b", re.I)),
)

_QWORD_RE = re.compile("|".join(map(re.escape, QUESTION_WORDS)))
_EN_STOP = frozenset("""a an the of in on at to for from by with about into over after before and or but is are was were be
    been being do does did can could has have had will would should shall may might must what which who whom whose when where
    why how many much long that this these those it its it's i you he she we they me my your our their there here not no yes
    please tell me know any some all as than then so if
    """.split())

# ---- content-free input ------------------------------------------------------------------
# Template and code syntax that carries no question: {{7*7}}, ${...}, <%...%>, {%...%}.
_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\$\{.*?\}|#\{.*?\}|<%.*?%>", re.S)
# SQL injection and shell fragments: a statement keyword followed by its object,
# comment markers after a quote or semicolon, tautologies.
_SQL = re.compile(
    r"\b(?:drop|truncate|alter|create)\s+(?:table|database|schema|index|view)\b"
    r"|\bdelete\s+from\b|\binsert\s+into\b|\bupdate\s+\w+\s+set\b|\bunion\s+(?:all\s+)?select\b"
    r"|\bselect\s+(?:\*|[\w,\s]{1,60}?)\s+from\s+\w+\s*(?:;|where\b|limit\b|--|$)|\bexec(?:ute)?\s*\(|\bxp_cmdshell\b|\bsleep\s*\(\s*\d+\s*\)|\bbenchmark\s*\("
    r"|['\"]\s*(?:or|and)\s+['\"]?\w+['\"]?\s*=\s*['\"]?\w+|['\";]\s*--|;\s*--|/\*.*?\*/",
    re.I | re.S)
_MARKUP = re.compile(r"<\s*/?\s*(?:script|img|iframe|svg|object|embed|style|a|body|html|div|input|form)\b[^>]*>|javascript:"
                     r"|\bon(?:error|load|click|mouseover)\s*=|\balert\s*\(|\bdocument\.(?:cookie|domain)", re.I)
_SHELL = re.compile(r"\$\([^)]*\)|`[^`]*`|(?:^|[;&|]\s*)(?:rm|cat|ls|wget|curl|bash|sh|nc|chmod|echo)\s+(?:-\w+|/[\w/.-]+)"
                    r"|\.\./|/etc/passwd|%[0-9]*[sdnxp](?:%[0-9]*[sdnxp])+", re.I)

NO_CONTENT_MESSAGE = ("The question has no words to search for (only {what}); "
                      "type a question in words, e.g. 福建12345热线的群众满意率是多少？")
CODE_MESSAGE = ("The question looks like {what}, not a question; type a question in words, "
                "e.g. 福建12345热线的群众满意率是多少？")


@dataclass(frozen=True)
class Question:
    """A question, analysed once.

    Attributes:
        text: the question as asked (stripped).
        folded: ``text`` folded to Simplified script, 甚么 read as 什么; same length.
        lang: "zh" when it has Chinese characters, else "en".
        terms: BM25 terms (jieba over the folded text; English place names add
            their Chinese names).
        bigrams: character bigrams of its content (question words removed),
            as the evidence rerank counts them.
        kind: what it asks for, one of ``KINDS``.
        unit: the measure word or unit the answer should carry (多少人次 -> 人次), or "".
        places: places it names, short forms (湖北省 -> 湖北).
        entities: other names it mentions (people, organisations, quoted titles,
            Latin words) that a supporting sentence should agree with.
        numbers: values of the figures it mentions (2021年 -> 2021.0).
    """

    text: str
    folded: str
    lang: str
    terms: tuple[str, ...]
    bigrams: frozenset[str]
    kind: str
    unit: str
    places: tuple[str, ...]
    entities: tuple[str, ...]
    numbers: tuple[float, ...]

    @property
    def crosslingual(self) -> bool:
        """True when the question has no Chinese (English over Chinese text)."""
        return self.lang != "zh"


def read_question(text: str) -> str:
    """The question folded to Simplified, with 甚么 read as 什么; same length."""
    return fold_script(text).replace("甚么", "什么")


def answer_kind(folded: str) -> str:
    """What a (folded) question asks for: one of ``KINDS``."""
    patterns = _ZH_KIND_PATTERNS if _CJK.search(folded) else _EN_KIND_PATTERNS
    for kind, pattern in patterns:
        if pattern.search(folded):
            if kind == "count" and _is_money_count(folded):
                return "money"
            return kind
    return "other"


def _is_money_count(folded: str) -> bool:
    return bool(re.search(r"(?:多少|几)(?:万|亿|千|百)?(?:元|块钱)", folded))


def answer_unit(folded: str, kind: str) -> str:
    """The unit the answer should carry: the measure word after 多少/几
    (多少人次 -> 人次, 几个 -> 个, 多少标准箱 -> 标准箱), % for rates, 元 for
    money; "" when the question does not say or asks for no figure."""
    if kind == "percent":
        return "个百分点" if "百分点" in folded else "%"
    if kind == "money":
        m = re.search(r"(?:多少|几)((?:万|亿|千)?(?:元|美元|欧元|港元))", folded)
        return m.group(1) if m else "元"
    if kind not in ("count", "duration"):
        return ""
    m = re.search(r"(?:多少|几)(" + _UNIT_RE + ")", folded)
    return m.group(1) if m else ""


def _english_words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z][A-Za-z'-]*", text)


def content_words(text: str) -> list[str]:
    """Words that carry content: Chinese characters outside question words and
    particles, Latin words outside a small stop list, figures."""
    folded = read_question(text)
    han = _QWORD_RE.sub(" ", folded)
    out = [c for c in han if _CJK.match(c)]
    out += [w for w in _english_words(folded) if w.lower() not in _EN_STOP and len(w) > 1]
    out += re.findall(r"\d+", folded)
    return out


def _visible(text: str) -> str:
    """Drop control, format (zero-width, bidi) and unassigned characters."""
    return "".join(c for c in text if unicodedata.category(c)[0] != "C")


def content_problem(text: str) -> str | None:
    """Why ``text`` is not a question wenda can search for, or None.

    Content-free input (only emoji, punctuation, symbols, control or
    zero-width characters) and strings that are code (SQL, templates,
    markup, shell) are refused before retrieval.
    """
    if "\x00" in text:
        return CODE_MESSAGE.format(what="binary data (it holds a NUL character)")
    visible = _visible(text)
    if _SQL.search(visible):
        return CODE_MESSAGE.format(what="an SQL statement")
    if _MARKUP.search(visible):
        return CODE_MESSAGE.format(what="HTML or script markup")
    if _SHELL.search(visible):
        return CODE_MESSAGE.format(what="a shell command, a path or a format string")
    stripped = _TEMPLATE.sub(" ", visible)
    if stripped != visible and not content_words(stripped):
        return CODE_MESSAGE.format(what="template syntax")
    if not content_words(stripped):
        kinds = []
        if any(unicodedata.category(c) in ("So", "Sk", "Sm", "Sc") for c in visible):
            kinds.append("emoji or symbols")
        if any(unicodedata.category(c).startswith("P") for c in visible):
            kinds.append("punctuation")
        if len(visible) < len(text):
            kinds.append("invisible characters")
        if any(c.isalpha() for c in visible):
            kinds.append("question words")
        return NO_CONTENT_MESSAGE.format(what=" and ".join(kinds) or "spaces")
    return None


def check_content(text: str) -> None:
    """Raise ``BadQueryError`` for content-free or code-like input.

    Raises:
        BadQueryError: with the reason and what to type instead.
    """
    problem = content_problem(text)
    if problem:
        raise BadQueryError(problem)


_pos_lock = threading.Lock()
_pos = None


def posseg(text: str) -> list[tuple[str, str]]:
    """jieba part-of-speech tags (ns place, nr person, nt organisation, nz other
    proper noun), with wenda's jieba dictionary."""
    global _pos
    with _pos_lock:
        if _pos is None:
            import jieba.posseg

            from ingest.tokenize import _jieba

            _pos = jieba.posseg.POSTokenizer(_jieba())
        return [(w.word, w.flag) for w in _pos.cut(text)]


GENERIC_PLACES = frozenset("中国 全国 全省 全区 全市 国家 城市 地方 城乡 农村 基层 社区".split())
_PLACE_SUFFIX = re.compile(r"(?:壮族自治区|维吾尔自治区|回族自治区|自治区|自治州|自治县|特别行政区|省|市|县|区|州)$")
_QUOTED = re.compile(r"[“「『《\"]([^”」』》\"]{1,30})[”」』》\"]")


def _strip_place(name: str) -> str:
    short = _PLACE_SUFFIX.sub("", name)
    return short if len(short) >= 2 else name


def _places_and_entities(folded: str, lang: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if lang != "zh":
        places = [p for p in places_in_english(folded) if p not in GENERIC_PLACES]
        names = [w for w in re.findall(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*\b", folded)
                 if w.lower() not in _EN_STOP and not places_in_english(w)]
        return tuple(places), tuple(dict.fromkeys(names))
    places: list[str] = []
    entities: list[str] = []
    for word, flag in posseg(folded):
        if len(word) < 2 or _QWORD_RE.fullmatch(word):
            continue
        if flag == "ns" and word not in GENERIC_PLACES:
            short = _strip_place(word)
            if short not in places:
                places.append(short)
        elif flag in ("nr", "nt", "nz", "eng") and word not in entities:
            entities.append(word)
    for m in _QUOTED.finditer(folded):
        if m.group(1) not in entities:
            entities.append(m.group(1))
    return tuple(places), tuple(entities)


_FIGURE = re.compile(r"\d+(?:\.\d+)?(?:万|亿)?|[零一二两三四五六七八九十百千万亿]{2,}")


def _numbers(folded: str) -> tuple[float, ...]:
    out = []
    for m in _FIGURE.finditer(folded):
        value = parse_number(m.group())
        if value is not None and value not in out:
            out.append(value)
    return tuple(out)


def analyse(text: str) -> Question:
    """Read a question once, for every stage after it.

    Args:
        text: the question as asked (Chinese in either script, or English).

    Returns:
        The analysed ``Question``.
    """
    text = text.strip()
    folded = read_question(text)
    lang = "zh" if _CJK.search(folded) else "en"
    kind = answer_kind(folded)
    places, entities = _places_and_entities(folded, lang)
    return Question(
        text=text, folded=folded, lang=lang,
        terms=tuple(tokenize(folded) + places_in_english(folded)),
        bigrams=question_bigrams(folded), kind=kind, unit=answer_unit(folded, kind),
        places=places, entities=entities, numbers=_numbers(folded),
    )
