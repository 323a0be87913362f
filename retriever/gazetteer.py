"""English (pinyin) names of China's provincial-level divisions and a few
large cities, so that an English question about "Hubei" can be matched
against Chinese text that says 湖北: as extra BM25 terms, and for the check
that an answer is about the place the question names.

Names are the standard Hanyu Pinyin romanisations (plus common English forms
such as Tibet, Inner Mongolia, Hong Kong).
"""

from __future__ import annotations

import re

PLACES: dict[str, str] = {
    "beijing": "北京", "tianjin": "天津", "shanghai": "上海", "chongqing": "重庆",
    "hebei": "河北", "shanxi": "山西", "shaanxi": "陕西", "liaoning": "辽宁", "jilin": "吉林",
    "heilongjiang": "黑龙江", "jiangsu": "江苏", "zhejiang": "浙江", "anhui": "安徽", "fujian": "福建",
    "jiangxi": "江西", "shandong": "山东", "henan": "河南", "hubei": "湖北", "hunan": "湖南",
    "guangdong": "广东", "hainan": "海南", "sichuan": "四川", "guizhou": "贵州", "yunnan": "云南",
    "gansu": "甘肃", "qinghai": "青海", "taiwan": "台湾", "guangxi": "广西", "tibet": "西藏",
    "xizang": "西藏", "inner mongolia": "内蒙古", "neimenggu": "内蒙古", "ningxia": "宁夏",
    "xinjiang": "新疆", "hong kong": "香港", "macau": "澳门", "macao": "澳门",
    "wuhan": "武汉", "nanjing": "南京", "hangzhou": "杭州", "guangzhou": "广州", "shenzhen": "深圳",
    "chengdu": "成都", "xi'an": "西安", "xian": "西安", "fuzhou": "福州", "nanchang": "南昌",
    "changchun": "长春", "kunming": "昆明", "lhasa": "拉萨", "nanning": "南宁", "guilin": "桂林",
    "baise": "百色", "enshi": "恩施", "yichang": "宜昌", "shiyan": "十堰", "suzhou": "苏州",
    "xiamen": "厦门", "harbin": "哈尔滨", "shenyang": "沈阳", "changsha": "长沙", "zhengzhou": "郑州",
    "jinan": "济南", "qingdao": "青岛", "hefei": "合肥", "taiyuan": "太原", "shijiazhuang": "石家庄",
    "lanzhou": "兰州", "xining": "西宁", "yinchuan": "银川", "urumqi": "乌鲁木齐", "hohhot": "呼和浩特",
    "guiyang": "贵阳", "haikou": "海口", "china": "中国",
}

_PATTERN = re.compile(r"\b(" + "|".join(re.escape(k) for k in sorted(PLACES, key=len, reverse=True)) + r")\b", re.I)


def places_in_english(text: str) -> list[str]:
    """Chinese names of the places an English text mentions, in order, unique."""
    out: list[str] = []
    for m in _PATTERN.finditer(text):
        name = PLACES[m.group(1).lower()]
        if name not in out:
            out.append(name)
    return out
