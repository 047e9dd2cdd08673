"""Generate the bundled customer-service intents example (train/dev/test CSVs).

Written for this project by the growthcurve team. Every utterance comes from a hand-written
template below whose slots (order numbers, products, dates, amounts, cities, ...) and ``[a|b]``
alternatives are filled with a seeded RNG, then lightly "humanised" (lower case, dropped
punctuation, greetings, typos, chat abbreviations). Near-exact duplicates are removed and the rest
is split 70/15/15, stratified by intent and language.

Running it again rewrites ``train.csv``, ``dev.csv`` and ``test.csv`` byte for byte:

    python src/growthcurve/examples/intents/make_intents.py [--out-dir DIR] [--seed 20240611]

Only the standard library's ``random`` is used for sampling and splitting (instead of
scikit-learn's ``train_test_split``) so the output cannot change with a library upgrade.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from growthcurve.atomic import write_text

SEED = 20240611
TARGETS = {"en": 56, "zh": 24}  # unique utterances per intent and language (about 70% / 30%)
SPLIT = (0.70, 0.15, 0.15)  # train / dev / test
MAX_PASSES = 6  # how many times each template may be tried per intent and language
CJK = re.compile(r"[\u4e00-\u9fff]")

# --------------------------------------------------------------------------------------------
# Slot values. ``{name}`` in a template is replaced by a random value of its language's list.
# --------------------------------------------------------------------------------------------
SLOTS: dict[str, dict[str, list[str]]] = {
    "en": {
        "product": [
            "wireless earbuds",
            "running shoes",
            "blender",
            "phone case",
            "laptop stand",
            "winter jacket",
            "coffee maker",
            "yoga mat",
            "desk lamp",
            "backpack",
            "smart watch",
            "bluetooth speaker",
            "air fryer",
            "office chair",
            "water bottle",
            "mechanical keyboard",
            "hair dryer",
            "bed sheets",
            "USB-C charger",
            "rice cooker",
            "robot vacuum",
            "electric toothbrush",
            "suitcase",
            "kids bike",
        ],
        "date": [
            "March 3",
            "May 20th",
            "Monday",
            "the 12th",
            "10/14",
            "June 1st",
            "Friday",
            "April 28",
            "the 2nd",
            "Tuesday",
            "Nov 11",
            "Dec 18th",
        ],
        "amount": [
            "$129",
            "$49.99",
            "$15.50",
            "$240",
            "$89",
            "$19.99",
            "$312.40",
            "$65",
            "$7.95",
            "$1,049",
        ],
        "city": [
            "Seattle",
            "Austin",
            "Toronto",
            "Manchester",
            "Denver",
            "Chicago",
            "Melbourne",
            "Dublin",
            "Vancouver",
            "Boston",
            "Phoenix",
            "Leeds",
        ],
        "days": [
            "5 days",
            "a week",
            "two weeks",
            "10 days",
            "three days",
            "over a week",
            "4 days",
            "12 days",
        ],
        "carrier": ["UPS", "FedEx", "DHL", "USPS", "Royal Mail", "Canada Post"],
        "pay": ["PayPal", "my Visa card", "Apple Pay", "my Mastercard", "Amex", "a gift card", "Google Pay"],
        "size": ["XL", "M", "size 10", "a small", "size 8", "L", "XS"],
        "color": ["black", "navy", "white", "red", "grey", "green"],
    },
    "zh": {
        "product": [
            "蓝牙耳机",
            "跑鞋",
            "榨汁机",
            "手机壳",
            "电饭煲",
            "羽绒服",
            "保温杯",
            "台灯",
            "双肩包",
            "智能手表",
            "空气炸锅",
            "扫地机器人",
            "电动牙刷",
            "四件套",
            "充电器",
            "机械键盘",
            "吹风机",
            "行李箱",
            "瑜伽垫",
            "电热水壶",
        ],
        "date": ["3月5号", "上周一", "前天", "12号", "5月20日", "上周五", "昨天", "10号", "上个月底"],
        "due": ["周五", "下周一", "月底", "6月18号", "这周末", "明天", "后天", "15号"],
        "amount": ["¥199", "199元", "¥89.9", "299块", "¥1299", "56元", "¥35", "468元", "¥2399", "七十多块"],
        "city": [
            "上海",
            "杭州",
            "成都",
            "深圳",
            "北京",
            "武汉",
            "南京",
            "广州",
            "西安",
            "重庆",
            "苏州",
            "长沙",
        ],
        "days": ["三天", "一周", "十天", "半个月", "五天", "一个星期", "四天", "快两周"],
        "carrier": ["顺丰", "中通", "圆通", "京东物流", "韵达", "申通", "邮政"],
        "pay": ["支付宝", "微信支付", "信用卡", "银行卡", "花呗", "云闪付"],
        "size": ["L码", "XL", "M码", "42码", "大一号", "小一码"],
        "color": ["黑色", "白色", "灰色", "红色", "藏青色", "米色"],
    },
}

# --------------------------------------------------------------------------------------------
# Hand-written templates: intent -> language -> list. ``[a|b|]`` picks one alternative (may be empty).
# Overlap between intents (refund/return/cancel, status/delay, payment/refund, complaints) is on purpose.
# --------------------------------------------------------------------------------------------
TEMPLATES: dict[str, dict[str, list[str]]] = {
    "order_status": {
        "en": [
            "Where is my order {order}?",
            "Hi, can you tell me where my package is? Order number {order}.",
            "has my order shipped yet",
            "I placed an order on {date} and haven't heard anything since. What's the status?",
            "Can I get the tracking number for order {order}?",
            "What's the [status|current status] of my order?",
            "Any update on {order}?",
            "I ordered the {product} on {date}. When will it arrive?",
            "The tracking page just says label created. Has it actually been picked up?",
            "How do I track my order?",
            "Is my {product} on its way?",
            "order status {order}",
            "When is my order expected to be delivered?",
            "Could you check on order {order} for me please? I need it before {date}.",
            "Has the {product} I bought left the warehouse yet?",
            "I didn't get a shipping confirmation email for {order}. Did it ship?",
            "where's my stuff",
            "Which carrier is delivering my order {order}?",
            "Can you give me an estimated delivery date for the {product}?",
            "I just want to know if my order went through and when it ships.",
            "Tracking number please, order {order}",
            "My order says processing. What does that mean and when will it move?",
            "Is order {order} going to arrive by {date}?",
            "It says out for delivery, roughly what time will it [come|get here]?",
            "Checking in on the order I placed [yesterday|this morning|last night], {order}.",
            "Has anything happened with my order? I paid {amount} on {date}.",
            "Can you see where my parcel is right now?",
            "Was my order split into two packages? I only got one tracking link.",
            "[where|Where] is my package",
            "Is there a way to see which step my order is at?",
        ],
        "zh": [
            "我的订单{order}到哪了？",
            "请问我的快递发货了[吗|没有]？",
            "帮我查一下订单{order}的物流",
            "我{date}买的{product}什么时候能到？",
            "怎么查看物流信息[啊|呀|]",
            "订单显示已发货，快递单号是多少？",
            "能告诉我快递单号吗？订单号{order}",
            "我的{product}发的是哪家快递？",
            "[大概|预计]哪天能送到？",
            "订单{order}现在是什么状态",
            "请问我的包裹现在到哪里了",
            "下单{days}了，发货了没有？",
            "我想知道我的订单什么时候发货",
            "[帮我|麻烦]查一下我的订单",
            "{due}之前能收到吗？我急用",
            "{product}出库了吗？",
        ],
    },
    "cancel_order": {
        "en": [
            "I want to cancel my order {order}.",
            "Please cancel order {order}, I ordered the wrong size.",
            "How do I cancel an order?",
            "cancel my order pls",
            "I changed my mind about the {product}, can I still cancel?",
            "Can you stop order {order} before it ships?",
            "I accidentally ordered the {product} twice. Please cancel one of them.",
            "I found it cheaper elsewhere, please cancel my order.",
            "Is it too late to cancel the order I placed on {date}?",
            "Cancel order {order} and don't charge my card.",
            "I placed a duplicate order by mistake, can you cancel {order}?",
            "Please don't ship my order, I don't need it anymore.",
            "Where is the cancel button? I can't find it in the app.",
            "I ordered the {product} for {amount} an hour ago and want to cancel it.",
            "Need to cancel, the delivery date is too late for me.",
            "Can I cancel just one item from my order?",
            "I'd like to withdraw my order {order} please.",
            "Scrap that order, I don't want it.",
            "Will I get charged if I cancel order {order} now?",
            "My order hasn't shipped yet so I'd like to cancel it.",
            "please cancel everything I ordered [today|this morning]",
            "How long do I have to cancel after placing an order?",
            "I want to cancel my order and get my money back.",
            "Cancel {order}. Ordered it by accident.",
            "I tried to cancel online but it says the order can't be cancelled. Help?",
            "Can I cancel a pre-order for the {product}?",
            "Please void the order I just made, I used the wrong card.",
            "I don't want the {product} anymore, cancel it please",
            "Can you cancel the order before {carrier} picks it up?",
        ],
        "zh": [
            "我想取消订单{order}",
            "怎么取消订单[啊|呀|]？",
            "拍错了，帮我把这个订单取消一下",
            "{product}不想要了，还没发货的话帮我取消吧",
            "订单{order}能取消吗？还没发货",
            "下错单了，麻烦取消",
            "我买重复了，[取消|帮我取消]一个订单",
            "别的地方更便宜，我要取消订单",
            "现在取消订单会扣钱吗？",
            "取消订单的按钮在哪里？找不到",
            "系统提示订单无法取消，怎么办",
            "刚下的单，帮我撤销一下",
            "预售的{product}可以取消吗",
            "发货太慢了，我不要了，取消吧",
            "订单里只想取消其中一件，可以吗？",
        ],
    },
    "refund_request": {
        "en": [
            "I want a refund for order {order}.",
            "Can I get my money back? The {product} stopped working after two days.",
            "I returned the {product} on {date} and still haven't been refunded.",
            "When will I receive my refund of {amount}?",
            "refund please, the item arrived damaged",
            "You charged me twice for the same order. I need the extra {amount} back.",
            "I cancelled my order but the money hasn't come back to my card.",
            "How long do refunds usually take?",
            "The {product} is nothing like the pictures. I want a full refund.",
            "I was told I'd get a refund within 5 days, it's been {days}.",
            "Can you refund the shipping fee? The package was late.",
            "Please refund {amount} to my original payment method.",
            "Where is my refund??",
            "My refund status says processing. What's going on?",
            "I got the wrong item and I just want my money back, not a replacement.",
            "Part of my order was missing. Can you refund the missing {product}?",
            "I'd like a partial refund, the {product} has a scratch but I'll keep it.",
            "Refund hasn't shown up in my bank account yet. Order {order}.",
            "Can the refund go to store credit instead?",
            "the price dropped the day after I bought it, can I get the difference back?",
            "I never received the package, so I want a refund.",
            "Is it possible to get a refund without sending the item back?",
            "I want my {amount} back. This is ridiculous.",
            "Refund for {order} please, quality is terrible.",
            "Money back for the {product} I bought on {date}?",
            "Did you process my refund? I haven't gotten a confirmation email.",
            "you said the refund was issued on {date} but nothing in my account",
            "I'm requesting a refund because the {product} was used when it arrived.",
            "How much of the {amount} will be refunded?",
        ],
        "zh": [
            "能帮我退款吗，东西质量太差了",
            "退款什么时候到账？",
            "我{date}就把{product}寄回去了，钱怎么还没退？",
            "订单{order}申请退款",
            "被扣了两次款，多扣的{amount}请退给我",
            "订单已经取消了，钱还没退回来",
            "我要退款，{product}收到就是坏的",
            "退款一般要几天[啊|]？",
            "仅退款可以吗？东西不想寄回了",
            "退款显示处理中好几天了，怎么回事",
            "少发了一件，缺的那件给我退钱",
            "买完第二天就降价了，能退差价吗？",
            "快递一直没收到，直接给我退款吧",
            "{amount}什么时候退到我的{pay}？",
            "说好三个工作日退款，现在都{days}了",
            "{product}和图片完全不一样，我要退钱",
        ],
    },
    "return_item": {
        "en": [
            "How do I return the {product}?",
            "I'd like to return an item from order {order}.",
            "The [jacket|hoodie|dress|shirt] doesn't fit. Can I exchange it for {size}?",
            "Can I send this back? I don't like the color.",
            "What's your return policy?",
            "I need a return label for the {product}.",
            "Is it too late to return something I bought on {date}?",
            "Do I have to pay for return shipping?",
            "I received the wrong {product}. How do I send it back and get the right one?",
            "can i return an opened item",
            "I want to exchange the {product} for [a different model|the {color} one].",
            "Where do I drop off a return in {city}?",
            "The {product} is defective, I want to swap it for a new one.",
            "Does the return window start from the delivery date or the order date?",
            "I lost the original box. Can I still return it?",
            "Can you arrange a pickup for my return? I'm in {city}.",
            "Started a return online but never got the shipping label.",
            "I bought this as a gift, can the recipient return it?",
            "return request for order {order}, item too small",
            "How many days do I have to return the {product}?",
            "I want to return two items but keep the rest of the order.",
            "My return was delivered back to you on {date}, can you confirm you got it?",
            "Can I return it in store or only by mail?",
            "Need to send back the {product}, it's not what I expected.",
            "Is there a restocking fee if I return the {product}?",
            "I'd like a replacement, the one I received has a crack.",
            "how to exchange size",
            "Which address do I ship my return to?",
            "Can I swap the {color} {product} for another color?",
        ],
        "zh": [
            "[鞋子|裤子|衣服]尺码不合适，怎么退货？",
            "我想换{size}的",
            "退货地址是[哪里|多少]？",
            "支持七天无理由退货吗？",
            "退货运费谁出？",
            "收到的{product}颜色发错了，我要换货",
            "拆封了还能退吗",
            "怎么申请退换货",
            "可以上门取件吗？我在{city}",
            "{product}有质量问题，想换个新的",
            "包装盒扔了，还能退货吗？",
            "订单{order}里的一件想退回去",
            "退货申请提交了，但是一直没给我寄件信息",
            "我已经把货寄回去了，你们收到了吗",
            "买了{days}了还能退吗",
            "{color}的不好看，能换成别的颜色吗",
        ],
    },
    "shipping_delay": {
        "en": [
            "My order was supposed to arrive on {date} and it's still not here.",
            "Why is my package taking so long?",
            "The tracking for {order} hasn't updated in {days}.",
            "It's been {days} and my {product} still hasn't shown up.",
            "My parcel is stuck in {city} and not moving.",
            "Delivery date keeps getting pushed back. What's going on?",
            "{carrier} says delayed. Any idea how long?",
            "Your site said 2-day shipping. It's been {days}.",
            "late delivery again. order {order}",
            "The package has been in transit for ages.",
            "I paid {amount} for express shipping and it's still late.",
            "Is there a reason my order is delayed?",
            "My order missed the delivery date. I needed it for {date}.",
            "Tracking says delivered but there's nothing at my door.",
            "Still waiting on my {product}. Ordered {date}.",
            "Why hasn't my order moved since it left the warehouse?",
            "Package delayed due to weather? How much longer?",
            "The courier was supposed to come today and never showed up.",
            "estimated delivery was yesterday, nothing yet",
            "My order has been stuck at customs for {days}.",
            "Is the holiday rush why my order is so slow?",
            "Can you chase {carrier}? My package seems lost.",
            "Order {order} should have been here by now.",
            "Why does it take so long to ship to {city}?",
            "I've been waiting {days} for a package that was meant to take three.",
            "The delivery window passed and the driver never came.",
            "Shipping is way slower than you promised.",
            "It's been sitting at the sorting center in {city} since {date}.",
            "[Seriously|Honestly], how is my order still not delivered?",
        ],
        "zh": [
            "我的订单怎么还没到？",
            "说好{date}送到，现在还没收到",
            "物流{days}都没更新了",
            "快递卡在{city}好几天不动了",
            "都{days}了还没到，太慢了吧",
            "{carrier}一直显示运输中，到底什么时候能到",
            "[选的是|付了钱选的]加急，怎么还这么慢",
            "预计送达时间已经过了，东西还没到",
            "显示已签收但我根本没收到",
            "包裹是不是丢了？好久没动静了",
            "派送员说今天送，结果一天都没来",
            "订单{order}怎么延迟这么久",
            "清关卡了{days}，能催一下吗",
            "等{product}等了{days}了",
            "快递太慢了，能不能帮我催一下",
            "从{city}发出来就再没动过",
        ],
    },
    "change_address": {
        "en": [
            "I need to change the shipping address on order {order}.",
            "Can I update my delivery address? I just moved to {city}.",
            "I put the wrong address, please fix it before it ships.",
            "Can you send my order to my office instead of my home?",
            "change address pls",
            "My apartment number is missing from the address on {order}.",
            "Is it possible to redirect the package to {city}?",
            "I won't be home on {date}, can I have it delivered to a different address?",
            "Wrong zip code on my order, can you correct it?",
            "How do I edit the address after placing an order?",
            "Please ship to my new address in {city}, not the old one.",
            "Typo in my street name. Order {order}.",
            "Can I change the recipient name and phone number on the order?",
            "The package is already with {carrier}, can the address still be changed?",
            "I'd like to update my default shipping address in my account.",
            "Can I pick it up at a locker instead of home delivery?",
            "Deliver it to my parents' place please, I'll be away.",
            "accidentally used my old address for the {product} order",
            "I'm moving on {date} and need to change where my package goes.",
            "Can you add a gate code to my delivery address?",
            "Need to update the address for order {order} to {city}.",
            "The address autofill picked the wrong city. Can you change it to {city}?",
            "I entered my billing address as the shipping address by mistake.",
            "Can I change where it's delivered even though it has shipped?",
            "Switching the delivery address to my work, how do I do that?",
            "Is there a fee to change the delivery address?",
            "My address changed, can you update it on all my open orders?",
            "Please cancel the old address and use {city} for the {product}.",
        ],
        "zh": [
            "收货地址填错了，能帮我改一下吗",
            "订单{order}的地址要改成{city}的",
            "我搬家了，想修改收货地址",
            "门牌号写错了，麻烦改一下",
            "怎么修改订单的收货地址？",
            "已经发货了还能改地址吗",
            "能不能寄到我公司，不要寄到家里",
            "收件人电话写错了，帮我改[下|一下]",
            "{due}我不在家，能改个地址吗",
            "帮我把地址改成{city}的新地址",
            "下单的时候选错了默认地址",
            "可以改成快递柜自提吗",
            "地址少写了小区名字，快递员找不到",
            "还没发货吧？我要换个收货地址",
            "{product}的收货地址能改到{city}吗",
        ],
    },
    "payment_failed": {
        "en": [
            "My payment keeps failing.",
            "My card was declined but I have enough money on it.",
            "I tried to pay with {pay} and got an error.",
            "The checkout page just spins and never completes.",
            "Payment failed but I was still charged {amount}.",
            "Why won't it accept my credit card?",
            "Order shows unpaid even though the money left my account.",
            "Can't complete checkout, it says transaction declined.",
            "{pay} isn't working on your site.",
            "I get payment could not be processed every time.",
            "Is there a problem with your payment system today?",
            "The security code from my bank never arrives so I can't pay.",
            "Tried three different cards, none of them work.",
            "my payment didnt go through",
            "The amount was deducted but the order {order} was not created.",
            "Why was my card charged {amount} when the payment failed?",
            "I can't pay with {pay}, is it supported?",
            "Checkout error when I try to buy the {product}.",
            "The coupon applied but then the payment failed.",
            "Each time I hit Pay, it kicks me back to the cart.",
            "Bank says no charge was attempted, but your site says declined.",
            "Payment pending for hours, is it going to go through?",
            "The order got cancelled because payment failed, can I pay again?",
            "I'm being asked to pay again for order {order}, I already paid.",
            "Paying with {pay} times out.",
            "Does your site accept international cards? Mine keeps getting rejected.",
            "Card declined [again|twice] for a {amount} order, what am I doing wrong?",
            "Why does the payment fail only on the app?",
        ],
        "zh": [
            "付款一直失败是怎么回事",
            "用{pay}支付提示失败",
            "银行卡被拒了，但卡里有钱",
            "钱扣了但是订单显示未付款",
            "付款页面一直转圈，付不了款",
            "支付失败了，但是扣了我{amount}",
            "为什么不能用信用卡付款",
            "下单的时候一直提示支付异常",
            "付了款订单{order}还是待付款状态",
            "换了好几张卡都付不了",
            "收不到支付验证码，没法付款",
            "{pay}付款超时了，要重新付吗",
            "结账的时候报错，买不了{product}",
            "支付失败订单被取消了，能重新付款吗",
            "[优惠券|红包]用了以后就付不了款了",
        ],
    },
    "account_access": {
        "en": [
            "I can't log into my account.",
            "I forgot my password.",
            "My account is locked after too many login attempts.",
            "The password reset email never arrives.",
            "How do I reset my password?",
            "I'm not getting the verification code on my phone.",
            "It says my password is incorrect but I know it's right.",
            "cant login",
            "My account got suspended and I don't know why.",
            "I changed my phone number and now I can't get into my account.",
            "The reset link says it has expired.",
            "Someone may have hacked my account, I can't log in.",
            "I can't remember which email I used to sign up.",
            "Two-factor authentication isn't working for me.",
            "Please unlock my account.",
            "Login page keeps saying something went wrong.",
            "I want to change my password but the option is greyed out.",
            "locked out of my account again",
            "How do I recover an account with no access to the old email?",
            "Keep getting logged out of the app every few minutes.",
            "I can't sign in with Google anymore.",
            "Reset password not working",
            "I need to access my account to check order {order}, but the login fails.",
            "Got an email saying my password was changed, but it wasn't me.",
            "The captcha won't let me log in.",
            "How many attempts before the account gets locked?",
            "My account was frozen after I tried to pay.",
            "Can you [send me|resend] the login code? It never came.",
        ],
        "zh": [
            "账号登不上去了",
            "忘记密码了怎么办",
            "密码输错太多次，账号被锁了",
            "收不到验证码，登录不了",
            "怎么重置密码？",
            "换了手机号，原来的账号登不进去",
            "重置密码的链接打开说已过期",
            "账号好像被盗了，密码被改了",
            "帐号被冻结了，帮我解封一下",
            "登录一直提示密码错误，我确定没输错",
            "微信登录不了了",
            "找回密码的邮件一直没收到",
            "我想查订单{order}，但是登不上账号",
            "APP老是自动退出登录",
            "[怎么|如何]修改登录密码",
        ],
    },
    "invoice_request": {
        "en": [
            "Can I get an invoice for order {order}?",
            "I need a VAT invoice for my company.",
            "Please email me a receipt for my purchase on {date}.",
            "How do I download the invoice?",
            "The company name on my invoice is wrong, can you reissue it?",
            "I need an itemized receipt for the {product} for my expense report.",
            "receipt for {order} please",
            "Can you add our tax ID to the invoice?",
            "Where can I find my invoices in my account?",
            "I didn't receive an invoice with my package.",
            "Need an invoice showing the {amount} I paid.",
            "Can the invoice be addressed to my employer in {city}?",
            "I lost my receipt, can you send another copy?",
            "Do you issue invoices in PDF?",
            "My accountant needs invoices for all orders from {date} onwards.",
            "The invoice amount doesn't match what I paid.",
            "Can I get a proforma invoice before paying?",
            "I need proof of purchase for a warranty claim on the {product}.",
            "Could you split the invoice into two, one per item?",
            "How do I get a receipt for a refunded order?",
            "Send invoice to my email pls",
            "Billing address on the invoice needs to be changed.",
            "Does the invoice include tax?",
            "Need a copy of the invoice for order {order} for reimbursement.",
            "Can you put the invoice in English?",
            "Where's the invoice? I paid {amount} and got nothing.",
            "Can I get one invoice for all my orders this month?",
        ],
        "zh": [
            "可以开发票吗？",
            "订单{order}需要开增值税专用发票",
            "发票抬头写错了，能重开吗",
            "电子发票在哪里下载",
            "麻烦帮我开个公司抬头的发票，税号我发给你",
            "收到货了，但是没有发票",
            "报销要用，能补开一下发票吗",
            "{date}买的{product}，想开[个|张]发票",
            "发票金额和实付的{amount}不一样",
            "发票能寄纸质的吗？",
            "怎么申请开票",
            "开发票需要多久",
            "我需要个购物凭证，保修要用",
            "退款的订单还能开发票吗",
        ],
    },
    "product_availability": {
        "en": [
            "Is the {product} back in stock?",
            "Do you have the {product} in {color}?",
            "When will the {product} be available again?",
            "Is this available in {size}?",
            "Can you let me know when the {product} is restocked?",
            "Is the {product} available in your {city} store?",
            "out of stock again?? when does it come back",
            "Are you still selling the {product}?",
            "Is the {product} available for pre-order?",
            "Do you have enough stock for me to order ten?",
            "The {product} page says sold out. Will you get more?",
            "Will the new model of the {product} be sold here?",
            "Can I buy the {product} in bulk?",
            "Is the {product} in stock at the warehouse near {city}?",
            "Any chance the limited edition comes back?",
            "Do you carry replacement parts for the {product}?",
            "Does the {product} come in other colors?",
            "I want to buy the {product} but it won't let me add it to cart.",
            "If I order the {product} today, is it in stock or backordered?",
            "When do you expect new stock of the {product}?",
            "Is the {product} discontinued?",
            "Is there a waitlist for the {product}?",
            "Do you sell gift cards?",
            "Will the {product} be available before {date}?",
            "can I still get the {product} for {amount}",
            "Do you have this in a smaller size?",
            "I need the {product} by {date}, do you have it in stock?",
        ],
        "zh": [
            "{product}还有货吗？",
            "这款有{color}的吗",
            "{product}什么时候补货",
            "显示缺货，还会再上架吗",
            "{size}还有吗？",
            "{product}停产了吗",
            "{city}的门店有现货吗",
            "可以预订吗？到货了通知我",
            "这个还有别的颜色吗",
            "我想买十个，库存够吗",
            "{product}有配件单独卖吗",
            "{due}之前能到货吗",
            "加不了购物车，是没货了吗",
            "{product}[现在|]是现货还是预售？",
        ],
    },
    "speak_to_human": {
        "en": [
            "I want to speak to a real person.",
            "Can I talk to a human agent please?",
            "This bot is useless. Get me a manager.",
            "I'd like to file a complaint about your customer service.",
            "This is the third time I'm contacting you about order {order}. Unacceptable.",
            "Transfer me to someone who can actually help.",
            "agent",
            "Is there a phone number I can call?",
            "Your service is terrible and nobody answers my emails.",
            "I want to escalate this issue.",
            "I'm very disappointed with how my case has been handled.",
            "Stop sending me automated replies and let me talk to someone.",
            "The delivery driver was extremely rude to me.",
            "I've been waiting on hold for an hour.",
            "Who can I complain to about this?",
            "Human please",
            "I need to speak to a supervisor about my {amount} charge.",
            "Your staff in the {city} store treated me badly.",
            "I want to leave a formal complaint.",
            "None of your answers help. Connect me to live chat.",
            "This is ridiculous, I've explained my problem five times.",
            "I will report you if no one gets back to me today.",
            "Can someone from your team call me back?",
            "I'm fed up with this company.",
            "real person pls",
            "I want to talk to someone about a problem with order {order}, not a bot.",
            "Worst customer experience I've ever had.",
        ],
        "zh": [
            "转人工",
            "我要找人工客服",
            "机器人回答的都没用，给我转真人",
            "我要投诉",
            "你们客服态度太差了",
            "问了三遍都没人解决，太离谱了",
            "有客服电话吗？",
            "快递员态度很差，我要投诉",
            "叫你们主管来跟我说",
            "这个问题我要升级处理",
            "等了一个小时了也没人理我",
            "人工客服在吗？",
            "订单{order}的事情能找个真人处理吗",
            "再不处理我就去12315投诉了",
        ],
    },
    "greeting_thanks": {
        "en": [
            "Hi",
            "Hello there",
            "Thanks for your help!",
            "Thank you so much, that solved it.",
            "Good morning",
            "ok got it, thanks",
            "That's all I needed, bye.",
            "Hey, anyone there?",
            "Cheers, have a nice day.",
            "Great, appreciate it!",
            "thx",
            "Perfect, thank you for the quick reply.",
            "Hi, I have a question.",
            "No, that's everything. Thanks again.",
            "Good [evening|afternoon]!",
            "You've been really helpful today.",
            "Awesome, thanks a lot",
            "Hello, is this customer service?",
            "Okay thank you, I'll wait then.",
            "Thanks, my issue with order {order} is sorted now.",
            "Nice, that worked.",
            "Hi there, hope you're well.",
            "Bye!",
            "Many thanks for sorting out the {product}.",
            "Yo",
            "Thanks for the refund, got it today.",
            "Alright, cool. Thanks.",
            "[Thanks|Thank you], that's [exactly what I needed|very clear|good to know].",
            "Hello! [Quick|Small] question if you have a minute.",
            "Morning, hope your day is going well.",
            "Ok, I'll [try that|give that a go]. Thanks!",
            "Got it, [thanks for explaining|thanks for checking].",
            "Hi again",
            "Thank you, you've been [great|super helpful|very patient].",
            "Hey there!",
            "All good now, thanks [a lot|a bunch|so much]!",
            "Have a [great|good] weekend, bye",
            "Sounds good, thanks",
        ],
        "zh": [
            "你好",
            "在吗",
            "谢谢！",
            "好的，谢谢你",
            "问题解决了，辛苦了",
            "早上好",
            "没有别的问题了，拜拜",
            "收到，麻烦你了",
            "太感谢了，效率真高",
            "您好，请问有人吗",
            "好的明白了",
            "退款收到了，谢谢",
            "客服你好",
            "谢[啦|了]",
            "[晚上|下午]好",
            "好的，[我知道了|我试试看]，谢谢",
            "[哈喽|嗨]，有人在吗",
            "OK，[没问题了|搞定了]，感谢",
            "[非常|真的]感谢你的帮助",
            "行，那我再等等，谢谢",
            "辛苦[了|啦]，祝你[工作顺利|生活愉快]",
            "明白，[多谢|谢谢]",
        ],
    },
}

# --------------------------------------------------------------------------------------------
# Humanising: how real customers deviate from the tidy template.
# --------------------------------------------------------------------------------------------
EN_PREFIXES = ["hi, ", "Hello, ", "hey ", "Hi there, ", "Excuse me, ", "Good morning, ", "um ", "Hey, "]
EN_SUFFIXES = [
    " thanks",
    " thx",
    " pls",
    " asap",
    " Thank you!",
    " please help",
    " ??",
    " Thanks in advance.",
]
EN_CASUAL = [
    (r"\byou\b", "u"),
    (r"\bplease\b", "pls"),
    (r"\bI'm\b", "im"),
    (r"\bdon't\b", "dont"),
    (r"\bcan't\b", "cant"),
    (r"\bthanks\b", "thx"),
    (r"\bbecause\b", "cuz"),
    (r"\bare\b", "r"),
    (r"\bwhat's\b", "whats"),
    (r"\bI'd\b", "id"),
    (r"\bisn't\b", "isnt"),
]
ZH_PREFIXES = ["你好，", "您好，", "在吗？", "亲，", "客服你好，", "hello，", "麻烦问下，"]
ZH_SUFFIXES = ["，谢谢", "，麻烦尽快", "，急！", "。谢谢啦", "？？", "，在线等", "，麻烦了"]
_SLOT = re.compile(r"\{(\w+)\}")
_ALT = re.compile(r"\[([^\[\]]*)\]")
_WORD = re.compile(r"[A-Za-z]{4,}")


def _fill(template: str, lang: str, rng: random.Random) -> str:
    """Resolve ``[a|b]`` alternatives, then replace every ``{slot}`` with a random value."""
    text = _ALT.sub(lambda m: rng.choice(m.group(1).split("|")), template)
    text = _SLOT.sub(lambda m: _slot_value(m.group(1), lang, rng), text)
    return text[:1].upper() + text[1:] if template.startswith("{") and lang == "en" else text


def _slot_value(name: str, lang: str, rng: random.Random) -> str:
    """One value for slot ``name``; order numbers are synthesised rather than listed."""
    if name == "order":
        letter = rng.choice("ABCDEFGHKLMNPRSTWXYZ")
        number = rng.randint(10000, 99999)
        if lang == "zh" and rng.random() < 0.5:
            return f"{rng.randint(2023, 2025)}{rng.randint(10**7, 10**8 - 1)}"  # long numeric id
        return f"#{letter}{number}" if rng.random() < 0.6 else f"{letter}{number}"
    return rng.choice(SLOTS[lang][name])


def _typo(text: str, rng: random.Random) -> str:
    """Introduce one keyboard slip (swap, drop or double a letter) in a word of 4+ letters."""
    words = list(_WORD.finditer(text))
    if not words:
        return text
    m = rng.choice(words)
    w = m.group(0)
    i = rng.randint(1, len(w) - 2)
    kind = rng.choice(["swap", "drop", "double"])
    if kind == "swap":
        w2 = w[:i] + w[i + 1] + w[i] + w[i + 2 :]
    elif kind == "drop":
        w2 = w[:i] + w[i + 1 :]
    else:
        w2 = w[:i] + w[i] + w[i:]
    return text[: m.start()] + w2 + text[m.end() :]


def _humanise(text: str, lang: str, label: str, rng: random.Random) -> str:
    """Apply a few random casual deviations; every random draw happens in a fixed order."""
    r = [rng.random() for _ in range(6)]  # fixed number of draws keeps the stream aligned
    chit_chat = label == "greeting_thanks"
    if lang == "en":
        if r[0] < 0.10:
            for pattern, repl in EN_CASUAL:
                text = re.sub(pattern, repl, text, flags=re.IGNORECASE)
        if r[1] < 0.08:
            text = _typo(text, rng)
        if r[2] < 0.15:
            text = text.rstrip(".?!")
        if r[3] < 0.12 and not chit_chat:
            keep = re.match(r"I\b", text) is not None  # "I" stays upper case after a greeting
            text = rng.choice(EN_PREFIXES) + (text if keep else text[:1].lower() + text[1:])
        if r[4] < 0.10 and not chit_chat:
            text = text + rng.choice(EN_SUFFIXES)
        if r[5] < 0.18:
            text = text.lower()
    else:
        if r[2] < 0.15:
            text = text.rstrip("。？！?!")
        if r[3] < 0.12 and not chit_chat:
            text = rng.choice(ZH_PREFIXES) + text
        if r[4] < 0.12 and not chit_chat:
            text = text.rstrip("。？！?!") + rng.choice(ZH_SUFFIXES)
        if r[5] < 0.10:
            text = text.replace("？", "?").replace("，", ",")  # half-width punctuation typed on a PC
    return text.strip()


def _key(text: str) -> str:
    """Duplicate key: case-folded, punctuation and spacing removed, so trivial variants collapse."""
    return re.sub(r"[\W_]+", "", text.casefold())


def generate(seed: int = SEED) -> list[tuple[str, str, str]]:
    """Return unique ``(text, label, lang)`` rows in a deterministic order."""
    rng = random.Random(seed)
    seen: set[str] = set()
    rows: list[tuple[str, str, str]] = []
    for label, by_lang in TEMPLATES.items():
        for lang in ("en", "zh"):
            templates, target, count = by_lang[lang], TARGETS[lang], 0
            for _ in range(MAX_PASSES):
                for template in templates:
                    if count >= target:
                        break
                    text = _humanise(_fill(template, lang, rng), lang, label, rng)
                    if _key(text) in seen:
                        continue
                    seen.add(_key(text))
                    rows.append((text, label, lang))
                    count += 1
    return rows


def split(rows: list[tuple[str, str, str]], seed: int = SEED) -> dict[str, list[tuple[str, str, str]]]:
    """Stratified 70/15/15 split by (label, language); each split is shuffled with the same seed."""
    rng = random.Random(seed + 1)
    groups: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for row in rows:
        groups.setdefault((row[1], row[2]), []).append(row)
    out: dict[str, list[tuple[str, str, str]]] = {"train": [], "dev": [], "test": []}
    for key in sorted(groups):
        group = groups[key][:]
        rng.shuffle(group)
        n_dev = max(1, round(len(group) * SPLIT[1]))
        n_test = max(1, round(len(group) * SPLIT[2]))
        out["test"] += group[:n_test]
        out["dev"] += group[n_test : n_test + n_dev]
        out["train"] += group[n_test + n_dev :]
    for name in ("train", "dev", "test"):
        rng.shuffle(out[name])
    return out


def to_csv(rows: list[tuple[str, str, str]]) -> str:
    """Serialise ``text,label,language`` rows as CSV text (minimal quoting, ``\\n`` line ends); the language
    column (``en``/``zh``) is for slicing (`growthcurve evaluate --slice-by language`)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["text", "label", "language"])
    writer.writerows(rows)
    return buf.getvalue()


def summary_table(splits: dict[str, list[tuple[str, str, str]]]) -> str:
    """Markdown table of counts per intent, split and language (pasted into README.md)."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for name, rows in splits.items():
        for _text, label, lang in rows:
            counts[(label, name, lang)] += 1
    header = "| intent | train en | train zh | dev en | dev zh | test en | test zh | total |"
    lines = [header, "|" + "---|" * 8]
    cols = [(s, lang) for s in ("train", "dev", "test") for lang in ("en", "zh")]
    for label in TEMPLATES:
        vals = [counts[(label, s, lang)] for s, lang in cols]
        lines.append(f"| {label} | " + " | ".join(map(str, vals)) + f" | {sum(vals)} |")
    totals = [sum(counts[(label, s, lang)] for label in TEMPLATES) for s, lang in cols]
    lines.append("| **total** | " + " | ".join(map(str, totals)) + f" | {sum(totals)} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Write train/dev/test CSVs to ``--out-dir`` (default: this folder) and print the counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    splits = split(generate(args.seed), args.seed)
    for name, rows in splits.items():
        write_text(args.out_dir / f"{name}.csv", to_csv(rows))
    print(summary_table(splits))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
