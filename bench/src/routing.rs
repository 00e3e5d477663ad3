//! Routing: decisions per second with 200 rules, and language detection.
//!
//! Unlike the other scenarios this one measures the daemon's library in this process
//! (`switchboard::domain::router`, `switchboard::domain::language`), not the daemon binary: a route runs
//! inside the ingest transaction on the store's one writer thread, so whatever it costs
//! is taken from every write, and only a direct measurement shows it apart from HTTP and
//! fsync. Language detection runs once per inbound message before the writer.
//!
//! Every rule is evaluated for every new conversation (matches combine), so a decision
//! costs the sum over all 200 rules; within a rule evaluation stops at the first
//! condition that fails. The rules are built with their conditions in the order config
//! validation puts them (inbox, channel, text, language, metadata, keywords, value tier,
//! flags), so cheap conditions guard the same regexes as they would in a real config.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use regex::RegexBuilder;
use serde_json::{Value, json};
use switchboard::domain::router::{KeywordSet, RouteAction, RouteCondition, RouteInput, Router};
use switchboard::model::Priority;
use switchboard_connector_core::ChannelKind;

/// Rules whose index is below this count as early ones in the message mix.
pub const EARLY_RULES: usize = 100;

/// Keyword lists as a multilingual desk keeps them: English, German, Spanish, French,
/// Portuguese, Thai, Arabic, a little Japanese; `|` between keywords. The first
/// fourteen topics have rules near the top of the list, the last six only near the end.
const KEYWORDS: [(&str, &str); 20] = [
    (
        "billing",
        "refund | charged twice | double charge | overcharged | invoice | receipt | payment failed \
         | billing | Rechnung | Rückerstattung | Gutschrift | abgebucht | reembolso | factura \
         | cobrado dos veces | cobro | remboursement | facture | prélèvement | fatura | cobrança \
         | คืนเงิน | เก็บเงินซ้ำ | ใบแจ้งหนี้ | ใบเสร็จ | ตัดเงิน | استرداد | فاتورة | مبلغ \
         | خصم مرتين | إيصال | 返金 | 請求書",
    ),
    (
        "outage",
        "outage | is down | not loading | can't log in | cannot log in | error 500 | error 503 \
         | Störung | funktioniert nicht | nicht erreichbar | caída | no funciona | panne \
         | ne fonctionne pas | fora do ar | não funciona | ระบบล่ม | ใช้งานไม่ได้ | เข้าไม่ได้ | معطل \
         | لا يعمل | توقف | つながらない",
    ),
    (
        "delivery",
        "never arrived | not delivered | tracking | parcel | package | courier | nicht angekommen \
         | Paket | Sendung | Zustellung | no ha llegado | paquete | envío | colis | pas reçu \
         | livraison | encomenda | entrega | ยังไม่ได้รับสินค้า | พัสดุ | เลขพัสดุ | การจัดส่ง \
         | لم يصل | الشحنة | الطرد | التوصيل | تتبع | 届かない",
    ),
    (
        "returns",
        "return label | send it back | exchange | wrong size | Rücksendung | umtauschen | Retoure \
         | devolución | cambio de talla | devolver | retour | échanger | devolução | troca \
         | คืนสินค้า | เปลี่ยนไซส์ | ส่งกลับ | إرجاع | استبدال | 返品",
    ),
    (
        "account",
        "password reset | forgot password | forgot my password | two-factor | 2fa | locked out \
         | Passwort | Konto gesperrt | contraseña | cuenta bloqueada | mot de passe | compte bloqué \
         | senha | conta bloqueada | รหัสผ่าน | บัญชีถูกล็อก | ลืมรหัส | كلمة المرور | الحساب مقفل \
         | パスワード",
    ),
    (
        "cancellation",
        "cancel my subscription | cancel my order | cancel my account | unsubscribe \
         | close my account | kündigen | Kündigung | stornieren | cancelar | darme de baja | résilier \
         | annuler | cancelar assinatura | ยกเลิก | إلغاء | 解約",
    ),
    (
        "complaint",
        "complaint | unacceptable | lawyer | legal action | consumer protection | worst service \
         | Beschwerde | Anwalt | inakzeptabel | queja | reclamación | abogado | plainte | avocat \
         | inadmissible | reclamação | advogado | ร้องเรียน | ทนาย | สคบ | شكوى | محامي | غير مقبول",
    ),
    (
        "fraud",
        "fraud | unauthorized | unauthorised | stolen card | phishing | scam | hacked \
         | someone used my card | Betrug | gehackt | nicht autorisiert | fraude | estafa | hackeado \
         | arnaque | piratage | golpe | ฉ้อโกง | โดนแฮก | มิจฉาชีพ | احتيال | اختراق | سرقة | 不正利用",
    ),
    (
        "warranty",
        "warranty | guarantee | defective | broken | stopped working | faulty | Garantie | defekt \
         | kaputt | garantía | defectuoso | roto | garantie | défectueux | cassé | garantia \
         | com defeito | quebrado | รับประกัน | ชำรุด | เสีย | ضمان | معيب | مكسور | 故障",
    ),
    (
        "b2b",
        "purchase order | bulk order | quote for | wholesale | net 30 | reseller | invoice address \
         | Angebot | Großbestellung | Großhandel | cotización | al por mayor | devis \
         | commande en gros | orçamento | atacado | ใบเสนอราคา | สั่งจำนวนมาก | ขายส่ง | عرض سعر \
         | طلب بالجملة | 見積",
    ),
    (
        "address",
        "change address | change my address | wrong address | update my address | delivery address \
         | Adresse ändern | falsche Adresse | Lieferadresse | cambiar dirección \
         | dirección incorrecta | changer d'adresse | adresse de livraison | alterar endereço \
         | เปลี่ยนที่อยู่ | ที่อยู่ผิด | تغيير العنوان | العنوان خطأ",
    ),
    (
        "promo",
        "gift card | voucher | promo code | discount code | coupon | Gutschein | Rabattcode \
         | tarjeta regalo | cupón | código de descuento | carte cadeau | code promo | vale-presente \
         | cupom | บัตรของขวัญ | โค้ดส่วนลด | คูปอง | بطاقة هدية | كود خصم | قسيمة | クーポン",
    ),
    (
        "app",
        "app crashes | app keeps crashing | bug | error message | update failed | won't open \
         | doesn't sync | Fehlermeldung | App stürzt ab | la app se cierra | mensaje de error | bogue \
         | plantage | message d'erreur | aplicativo trava | mensagem de erro | แอปเด้ง | ข้อผิดพลาด \
         | อัปเดตไม่ได้ | خطأ | التطبيق يتوقف | アプリが落ちる",
    ),
    (
        "payment",
        "paypal | card declined | credit card | apple pay | klarna | bank transfer | Überweisung \
         | Lastschrift | Kreditkarte | tarjeta rechazada | transferencia | virement | carte refusée \
         | boleto | pix | โอนเงิน | พร้อมเพย์ | บัตรเครดิต | تحويل بنكي | بطاقة ائتمان \
         | الدفع عند الاستلام",
    ),
    (
        "privacy",
        "gdpr | delete my data | data request | privacy | personal data | Datenschutz | DSGVO \
         | Auskunft | privacidad | datos personales | RGPD | données personnelles | LGPD \
         | dados pessoais | ข้อมูลส่วนตัว | PDPA | ลบข้อมูล | خصوصية | بياناتي | حذف بياناتي",
    ),
    (
        "accessibility",
        "screen reader | accessibility | wheelchair | blind | hearing impaired | barrierefrei \
         | Rollstuhl | accesibilidad | lector de pantalla | accessibilité | lecteur d'écran \
         | acessibilidade | การเข้าถึง | ผู้พิการ | إمكانية الوصول | قارئ الشاشة",
    ),
    (
        "press",
        "press inquiry | journalist | interview | partnership | affiliate | sponsorship | media kit \
         | Presseanfrage | Kooperation | prensa | colaboración | presse | partenariat | imprensa \
         | parceria | ความร่วมมือ | สื่อมวลชน | صحافة | شراكة | 取材",
    ),
    (
        "feedback",
        "thank you | thanks | great service | love your | feedback | suggestion | danke | Lob \
         | gracias | sugerencia | merci | obrigado | obrigada | ขอบคุณ | บริการดี | شكرا | اقتراح \
         | ありがとう",
    ),
    (
        "urgent",
        "urgent | asap | immediately | emergency | right now | dringend | sofort | Notfall | urgente \
         | inmediatamente | urgence | immédiatement | imediatamente | ด่วน | ด่วนที่สุด | عاجل | فورا \
         | 至急",
    ),
    (
        "safety",
        "allergic reaction | injury | injured | fire hazard | recall | burned | choking | Verletzung \
         | Rückruf | Brandgefahr | alergia | lesión | retirada | rappel | blessure | ferimento | แพ้ \
         | บาดเจ็บ | ไฟไหม้ | حساسية | إصابة | حريق",
    ),
];

/// Topics with rules near the top of the list (the first fourteen of [`KEYWORDS`]).
const EARLY_TOPICS: usize = 14;

/// A rule's conditions, built into [`RouteCondition`]s in config validation's order.
#[derive(Default)]
struct When {
    inbox: Vec<String>,
    channel: Vec<ChannelKind>,
    text: Option<String>,
    language: Vec<String>,
    metadata: BTreeMap<String, String>,
    keywords: Vec<&'static str>,
    value_tier: Vec<String>,
    flags: Vec<String>,
}

fn when() -> When {
    When::default()
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|item| (*item).to_owned()).collect()
}

impl When {
    fn inbox(mut self, inbox: &str) -> When {
        self.inbox.push(inbox.to_owned());
        self
    }

    fn channel(mut self, channel: ChannelKind) -> When {
        self.channel.push(channel);
        self
    }

    fn text(mut self, pattern: &str) -> When {
        self.text = Some(pattern.to_owned());
        self
    }

    fn language(mut self, tags: &[&str]) -> When {
        self.language = strings(tags);
        self
    }

    fn metadata(mut self, key: &str, value: &str) -> When {
        self.metadata.insert(key.to_owned(), value.to_owned());
        self
    }

    /// A `[keywords]` list by its name in [`KEYWORDS`].
    fn keywords(mut self, name: &'static str) -> When {
        self.keywords.push(name);
        self
    }

    fn value_tier(mut self, tiers: &[&str]) -> When {
        self.value_tier = strings(tiers);
        self
    }

    fn flags(mut self, flags: &[&str]) -> When {
        self.flags = strings(flags);
        self
    }

    fn conditions(self, sets: &HashMap<&str, KeywordSet>) -> Vec<RouteCondition> {
        let mut conditions = Vec::new();
        if !self.inbox.is_empty() {
            conditions.push(RouteCondition::Inbox(self.inbox));
        }
        if !self.channel.is_empty() {
            conditions.push(RouteCondition::Channel(self.channel));
        }
        if let Some(pattern) = self.text {
            // The size limit config validation gives rules' regexes.
            let regex = RegexBuilder::new(&pattern).size_limit(1 << 20).build();
            conditions.push(RouteCondition::Text(regex.expect("a valid pattern")));
        }
        if !self.language.is_empty() {
            conditions.push(RouteCondition::Language(self.language));
        }
        if !self.metadata.is_empty() {
            conditions.push(RouteCondition::Metadata(self.metadata));
        }
        if !self.keywords.is_empty() {
            let chosen = self.keywords.iter().map(|name| sets[name].clone()).collect();
            conditions.push(RouteCondition::Keywords(chosen));
        }
        if !self.value_tier.is_empty() {
            conditions.push(RouteCondition::ValueTier(self.value_tier));
        }
        if !self.flags.is_empty() {
            conditions.push(RouteCondition::Flags(self.flags));
        }
        conditions
    }
}

type Rule = (String, Vec<RouteCondition>, RouteAction);

struct Rules {
    sets: HashMap<&'static str, KeywordSet>,
    rules: Vec<Rule>,
}

impl Rules {
    fn add(&mut self, name: &str, when: When, team: Option<&str>, priority: Option<Priority>, labels: &[&str]) {
        let action = RouteAction {
            team: team.map(str::to_owned),
            priority,
            labels: strings(labels),
        };
        self.rules.push((name.to_owned(), when.conditions(&self.sets), action));
    }
}

/// Two hundred rules as a large multi-brand, multi-region desk accumulates them: contact
/// rules first, regional desks, topics, regexes for references people paste, brand
/// inboxes, channels, campaigns, and a few late additions at the end.
fn two_hundred_rules() -> Vec<Rule> {
    let sets = KEYWORDS
        .iter()
        .map(|(name, words)| {
            let words: Vec<String> = words.split('|').map(|word| word.trim().to_owned()).collect();
            (*name, KeywordSet::new(name, &words).expect("a valid keyword list"))
        })
        .collect();
    let mut rules = Rules {
        sets,
        rules: Vec::new(),
    };
    let topic = |index: usize| KEYWORDS[index].0;
    let (high, urgent) = (Some(Priority::High), Some(Priority::Urgent));

    // Contact rules: 12.
    let tiers = ["platinum", "gold"];
    rules.add("vip", when().flags(&["vip"]), None, high, &["vip"]);
    rules.add(
        "influencers",
        when().flags(&["influencer", "press"]),
        None,
        high,
        &["influencer"],
    );
    rules.add(
        "fraud watch",
        when().flags(&["fraud_watch", "chargeback"]),
        Some("risk"),
        None,
        &["fraud-watch"],
    );
    rules.add("platinum", when().value_tier(&["platinum"]), None, high, &["platinum"]);
    rules.add("gold", when().value_tier(&["gold"]), None, None, &["gold"]);
    rules.add(
        "enterprise plan",
        when().metadata("plan", "enterprise"),
        Some("enterprise"),
        high,
        &[],
    );
    rules.add(
        "business plan",
        when().metadata("plan", "business"),
        Some("b2b"),
        None,
        &["business"],
    );
    rules.add("apac", when().metadata("region", "apac"), None, None, &["apac"]);
    rules.add("mena", when().metadata("region", "mena"), None, None, &["mena"]);
    let valued_complaint = when().keywords("complaint").value_tier(&tiers);
    rules.add(
        "valued complaint",
        valued_complaint,
        Some("customer-care"),
        urgent,
        &["complaint"],
    );
    let enterprise_outage = when().metadata("plan", "enterprise").keywords("outage");
    rules.add(
        "enterprise outage",
        enterprise_outage,
        Some("enterprise-technical"),
        urgent,
        &["outage"],
    );
    let vip_telegram = when()
        .channel(switchboard::channels::registry::known::TELEGRAM)
        .flags(&["vip"]);
    rules.add("vip on telegram", vip_telegram, None, None, &["vip-telegram"]);

    // Regional desks, one per language and early topic: 56.
    for language in ["th", "ar", "de", "es"] {
        for index in 0..EARLY_TOPICS {
            let label = format!("{language}-{}", topic(index));
            let desk = format!("{language}-desk");
            let when = when().language(&[language]).keywords(topic(index));
            rules.add(&label, when, Some(&desk), None, &[&label]);
        }
    }

    // Topics: 14.
    for index in 0..EARLY_TOPICS {
        let name = topic(index);
        let priority = match name {
            "outage" | "fraud" => urgent,
            "complaint" => high,
            _ => None,
        };
        rules.add(name, when().keywords(name), Some(name), priority, &[name]);
    }

    // What people paste: 20 regexes, two of them with a second condition.
    let regexes: [(&str, &str, Option<&str>, &str); 18] = [
        (
            "order number",
            r"(?i)\b(?:order|bestellung|pedido|commande|encomenda)\s*(?:no\.?|nr\.?|number|#)?\s*#?\d{6,10}\b",
            None,
            "order-number",
        ),
        ("ups tracking", r"\b1Z[0-9A-Z]{16}\b", None, "tracking-number"),
        ("postal tracking", r"\b[A-Z]{2}\d{9}[A-Z]{2}\b", None, "tracking-number"),
        (
            "thai courier tracking",
            r"\b(?:TH|KER|SPX)\d{10,13}\b",
            None,
            "tracking-number",
        ),
        (
            "iban",
            r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){3,7}\b",
            Some("risk"),
            "iban-shared",
        ),
        (
            "card number",
            r"\b(?:\d{4}[ -]?){3}\d{4}\b",
            Some("risk"),
            "card-number-shared",
        ),
        (
            "error code",
            r"(?i)\b(?:error|fehler|erreur|código de error|code)\s*[45]\d{2}\b",
            Some("technical"),
            "error-code",
        ),
        (
            "shop link",
            r"https?://(?:www\.)?shop\.example\.com/\S+",
            None,
            "shop-link",
        ),
        ("email address", r"[\w.+-]+@[\w-]+\.[\w.]+", None, "email-address"),
        (
            "phone number",
            r"\+\d{1,3}[\s-]?\d{2,4}[\s-]?\d{3,4}[\s-]?\d{3,4}",
            None,
            "phone-number",
        ),
        (
            "invoice number",
            r"\bINV-\d{4}-\d{5}\b",
            Some("billing"),
            "invoice-number",
        ),
        ("sku", r"(?i)\bsku[\s:-]*[A-Z0-9]{6,}\b", None, "sku"),
        ("reply prefix", r"(?i)^(?:re|aw|fw|fwd|wg|rv):", None, "reply"),
        (
            "out of office",
            r"(?i)\b(?:out of office|abwesenheitsnotiz|fuera de la oficina|absence du bureau|automatic reply)\b",
            None,
            "auto-reply",
        ),
        (
            "legal",
            r"(?i)\b(?:chargeback|dispute|small claims|cease and desist)\b",
            Some("legal"),
            "legal",
        ),
        ("thai phone", r"\b0[689]\d[- ]?\d{3}[- ]?\d{4}\b", None, "phone-number"),
        ("arabic digits", r"[٠-٩]{6,}", None, "arabic-digits"),
        (
            "amount",
            r"(?:€|\$|£|฿|USD|EUR|THB|SAR|AED)\s?\d+(?:[.,]\d{2})?",
            None,
            "amount",
        ),
    ];
    for (name, pattern, team, label) in regexes {
        rules.add(name, when().text(pattern), team, None, &[label]);
    }
    let newsletter = when()
        .channel(switchboard::channels::registry::known::EMAIL)
        .text(r"(?i)\b(?:unsubscribe|newsletter|abmelden)\b");
    rules.add("newsletter", newsletter, None, Some(Priority::Low), &["newsletter"]);
    let international = when()
        .text(r"(?i)\b(?:shipping|versand|envío|livraison|zoll|aduana|douane)\b")
        .language(&["de", "es", "fr"]);
    rules.add("international shipping", international, None, None, &["international"]);

    // Brand inboxes: 32.
    for brand in 1..=8 {
        let inbox = format!("brand-{brand}");
        for name in ["billing", "delivery", "returns"] {
            let team = format!("{inbox}-{name}");
            rules.add(
                &format!("{inbox} {name}"),
                when().inbox(&inbox).keywords(name),
                Some(&team),
                None,
                &[name],
            );
        }
        let team = format!("{inbox}-general");
        rules.add(&inbox, when().inbox(&inbox), Some(&team), None, &[&inbox]);
    }

    // Channels: 12.
    for channel in [
        switchboard::channels::registry::known::TELEGRAM,
        switchboard::channels::registry::known::EMAIL,
        switchboard::channels::registry::known::WEBHOOK,
    ] {
        for name in ["billing", "delivery", "account", "app"] {
            let label = format!("{channel}-{name}");
            rules.add(&label, when().channel(channel).keywords(name), None, None, &[&label]);
        }
    }

    // Campaigns: 30.
    let campaigns = [
        "black-friday-2026",
        "summer-sale",
        "spring-launch",
        "loyalty-week",
        "back-to-school",
        "songkran",
        "ramadan-offers",
        "singles-day",
        "new-year",
        "clearance",
    ];
    for campaign in campaigns {
        let tagged = || when().metadata("campaign", campaign);
        let label = format!("campaign-{campaign}");
        rules.add(&label, tagged(), None, None, &[&label]);
        let codes = format!("{campaign} codes");
        rules.add(
            &codes,
            tagged().keywords("promo"),
            Some("promotions"),
            None,
            &["promo-code"],
        );
        let valued = format!("{campaign} valued");
        rules.add(&valued, tagged().value_tier(&tiers), None, high, &["campaign-valued"]);
    }

    // Late additions: the last six topics, 24.
    for index in EARLY_TOPICS..KEYWORDS.len() {
        let name = topic(index);
        let (team, priority) = match name {
            "privacy" => (Some("privacy"), None),
            "accessibility" => (Some("accessibility"), high),
            "press" => (Some("communications"), None),
            "safety" => (Some("product-safety"), urgent),
            "urgent" => (None, urgent),
            _ => (None, None),
        };
        rules.add(name, when().keywords(name), team, priority, &[name]);
        for language in ["th", "ar"] {
            let label = format!("{language}-{name}");
            rules.add(
                &label,
                when().language(&[language]).keywords(name),
                None,
                None,
                &[&label],
            );
        }
        let valued = format!("valued {name}");
        rules.add(
            &valued,
            when().keywords(name).value_tier(&tiers),
            None,
            high,
            &["valued"],
        );
    }
    assert_eq!(rules.rules.len(), 200, "the scenario is named for 200 rules");
    rules.rules
}

/// A message as the router sees it; the language is what detection gives, as in ingest.
struct Message {
    inbox: &'static str,
    channel: ChannelKind,
    subject: Option<String>,
    text: String,
    language: Option<&'static str>,
    metadata: BTreeMap<String, Value>,
}

impl Message {
    fn new(
        inbox: &'static str,
        channel: ChannelKind,
        subject: Option<String>,
        text: String,
        contact: Value,
    ) -> Message {
        let metadata = match contact {
            Value::Object(map) => map.into_iter().collect(),
            _ => BTreeMap::new(),
        };
        Message {
            inbox,
            channel,
            language: switchboard::domain::language::detect(&text),
            subject,
            text,
            metadata,
        }
    }

    fn input(&self) -> RouteInput<'_> {
        RouteInput {
            inbox: self.inbox,
            channel: self.channel,
            subject: self.subject.as_deref(),
            text: &self.text,
            language: self.language,
            metadata: &self.metadata,
        }
    }

    fn chars(&self) -> usize {
        self.text.chars().count()
    }
}

/// Chat lines: what customers type into a widget or Telegram, in seven languages, with
/// the contact attributes the channel sends along.
fn chat_lines() -> Vec<Message> {
    let lines: [(&str, Value); 48] = [
        ("Hi, I was charged twice for order #4839201, can you refund?", json!({})),
        (
            "my parcel never arrived, tracking says delivered",
            json!({"value_tier": "gold"}),
        ),
        (
            "The app is down again, error 503 when I log in",
            json!({"plan": "enterprise"}),
        ),
        ("how do I delete my data from your system?", json!({})),
        ("hey, is the store open on sundays?", json!({})),
        ("thanks, that solved it! have a nice day", json!({"flags": ["vip"]})),
        ("Do you ship to Canada? Looking at the blue jacket", json!({})),
        (
            "I'd like to cancel my subscription please",
            json!({"value_tier": "standard"}),
        ),
        (
            "need a quote for 500 units, bulk order for our office",
            json!({"plan": "business"}),
        ),
        ("Your checkout doesn't work with my screen reader", json!({})),
        (
            "someone used my card without permission!!",
            json!({"flags": ["fraud_watch"]}),
        ),
        ("Can I change the delivery address for my order?", json!({})),
        (
            "What's the promo code for the summer sale?",
            json!({"campaign": "summer-sale"}),
        ),
        ("I'm a journalist writing a piece about your company", json!({})),
        ("great service, love your products", json!({"value_tier": "platinum"})),
        ("hello? anyone there? been waiting 10 minutes", json!({})),
        ("Where can I find your size chart for shoes?", json!({})),
        (
            "is the black friday sale still on tomorrow?",
            json!({"campaign": "black-friday-2026"}),
        ),
        ("Meine Rechnung ist falsch, bitte korrigieren", json!({})),
        (
            "Paket ist nicht angekommen, Sendungsnummer fehlt",
            json!({"region": "emea"}),
        ),
        ("Wie lange dauert der Versand nach Österreich?", json!({})),
        ("Ich möchte mein Abo kündigen, wie geht das?", json!({})),
        ("Guten Morgen, habt ihr heute geöffnet?", json!({})),
        ("Hola, no ha llegado mi paquete todavía", json!({})),
        (
            "Quiero un reembolso, el producto llegó roto",
            json!({"value_tier": "gold"}),
        ),
        ("¿Tienen esta camiseta en talla M o solo en L?", json!({})),
        ("Bonjour, ma commande n'est toujours pas arrivée", json!({})),
        ("Je voudrais un remboursement s'il vous plaît", json!({})),
        ("Merci beaucoup pour votre aide rapide !", json!({})),
        ("Olá, minha encomenda ainda não chegou", json!({})),
        ("Quero cancelar assinatura, como faço isso?", json!({})),
        ("สวัสดีครับ ขอคืนเงินค่าสินค้าด้วยครับ", json!({"region": "apac"})),
        ("ยังไม่ได้รับสินค้าเลยค่ะ สั่งไปตั้งแต่อาทิตย์ที่แล้ว", json!({"region": "apac"})),
        ("แอปเด้งทุกครั้งที่เปิดค่ะ ช่วยดูให้หน่อย", json!({})),
        ("ร้านเปิดให้บริการกี่โมงถึงกี่โมงครับ", json!({})),
        ("ขอบคุณมากครับ บริการดีมากเลย", json!({"value_tier": "gold"})),
        ("ลืมรหัสผ่าน เข้าระบบไม่ได้ครับ ช่วยด้วย", json!({})),
        ("มีโปรโมชั่นสงกรานต์ไหมคะ อยากได้โค้ดส่วนลด", json!({"campaign": "songkran"})),
        ("مرحبا، أريد استرداد المبلغ من فضلكم", json!({"region": "mena"})),
        ("الطلب لم يصل حتى الآن، متى سيصل؟", json!({})),
        (
            "التطبيق معطل منذ الصباح ولا أستطيع الدخول",
            json!({"plan": "enterprise"}),
        ),
        ("هل لديكم فرع في الرياض أو في جدة؟", json!({})),
        ("شكرا جزيلا على المساعدة السريعة", json!({})),
        ("أريد حذف بياناتي من حسابكم من فضلكم", json!({})),
        ("注文した商品がまだ届かないのですが、確認できますか", json!({})),
        ("返金をお願いします。注文番号は 48213377 です", json!({})),
        (
            "yo can u check my order?? its been a week",
            json!({"flags": ["influencer"]}),
        ),
        ("wrong size again... how do I send it back?", json!({})),
    ];
    lines
        .into_iter()
        .enumerate()
        .map(|(index, (text, contact))| {
            // Telegram and the shop's chat widget, with a brand's widget now and then.
            let (inbox, channel) = match index % 6 {
                0 | 3 => ("telegram", switchboard::channels::registry::known::TELEGRAM),
                5 => ("brand-3", switchboard::channels::registry::known::WEBHOOK),
                _ => ("shop", switchboard::channels::registry::known::WEBHOOK),
            };
            Message::new(inbox, channel, None, text.to_owned(), contact)
        })
        .collect()
}

/// One language's material for emails: neutral sentences a customer writes around the
/// point, and the point itself for a few topics.
struct Letters {
    greeting: &'static str,
    closing: &'static str,
    filler: [&'static str; 8],
    /// Billing (an early rule), delivery (early), privacy (only late rules), nothing.
    points: [(&'static str, &'static str); 4],
}

const LETTERS: [Letters; 6] = [
    Letters {
        greeting: "Hello,",
        closing: "Kind regards,\nJane Miller\n+44 20 7946 0958",
        filler: [
            "I have been a customer of yours for several years and have always been happy with the quality of your products.",
            "Last month I placed an order through your website using my usual account and paid straight away.",
            "I tried to reach you by phone earlier today, but the line was busy for more than twenty minutes.",
            "I would appreciate it if you could look into this as soon as you are able to.",
            "My husband mentioned that a friend of ours had a similar experience a few weeks ago.",
            "I have attached screenshots of the confirmation page and the email I received afterwards.",
            "Please let me know if you need any further information from my side.",
            "I checked the help pages on your website before writing, but could not find an answer to my question.",
        ],
        points: [
            (
                "Charged twice",
                "It looks like I was charged twice for the same purchase, so I would like a refund of the second payment.",
            ),
            (
                "Where is my parcel?",
                "The parcel has still not arrived and the tracking page has not changed for six days.",
            ),
            (
                "Data request",
                "Under the GDPR I would like you to delete my data and confirm once it is done.",
            ),
            (
                "A question about sizes",
                "I am not sure whether the jacket runs small, and I would like to know before I decide.",
            ),
        ],
    },
    Letters {
        greeting: "Sehr geehrte Damen und Herren,",
        closing: "Mit freundlichen Grüßen\nAnna Schmidt\nBestellung 4471902",
        filler: [
            "Ich bin seit mehreren Jahren Kundin bei Ihnen und war mit der Qualität Ihrer Produkte immer sehr zufrieden.",
            "Letzten Monat habe ich über Ihre Webseite mit meinem gewohnten Kundenkonto bestellt und sofort bezahlt.",
            "Ich habe heute bereits versucht, Sie telefonisch zu erreichen, aber die Leitung war über zwanzig Minuten besetzt.",
            "Ich wäre Ihnen dankbar, wenn Sie sich die Sache so bald wie möglich ansehen könnten.",
            "Eine Bekannte hat mir erzählt, dass es ihr vor einigen Wochen ganz ähnlich ergangen ist.",
            "Screenshots der Bestellbestätigung und der E-Mail, die ich danach erhalten habe, finden Sie im Anhang.",
            "Bitte geben Sie mir Bescheid, falls Sie weitere Informationen von mir benötigen.",
            "Bevor ich Ihnen geschrieben habe, habe ich die Hilfeseiten auf Ihrer Webseite gelesen, aber keine Antwort gefunden.",
        ],
        points: [
            (
                "Doppelte Abbuchung",
                "Der Betrag wurde zweimal abgebucht, deshalb bitte ich um die Rückerstattung der zweiten Zahlung.",
            ),
            (
                "Wo bleibt meine Bestellung?",
                "Das Paket ist bis heute nicht angekommen und der Status hat sich seit sechs Tagen nicht geändert.",
            ),
            (
                "Anfrage nach DSGVO",
                "Gemäß DSGVO bitte ich um Auskunft über alle zu meiner Person gespeicherten Daten.",
            ),
            (
                "Frage zur Größe",
                "Ich bin nicht sicher, ob die Jacke klein ausfällt, und würde das gern vorher wissen.",
            ),
        ],
    },
    Letters {
        greeting: "Hola,",
        closing: "Un saludo,\nLucía García\nlucia.garcia@example.es",
        filler: [
            "Soy cliente suya desde hace varios años y siempre he estado contenta con la calidad de sus productos.",
            "El mes pasado hice un pedido a través de su página web con mi cuenta habitual y lo pagué en el momento.",
            "Hoy he intentado llamarles por teléfono, pero la línea ha estado ocupada durante más de veinte minutos.",
            "Les agradecería que revisaran este asunto en cuanto les sea posible.",
            "Una amiga me comentó que hace unas semanas le pasó algo muy parecido.",
            "Adjunto capturas de la página de confirmación y del correo que recibí después.",
            "Por favor, díganme si necesitan más información por mi parte.",
            "Antes de escribirles he leído las páginas de ayuda de su web, pero no he encontrado respuesta.",
        ],
        points: [
            (
                "Cobro duplicado",
                "Me han cobrado dos veces la misma compra y solicito el reembolso del segundo pago.",
            ),
            (
                "Mi pedido no llega",
                "El paquete no ha llegado todavía y el seguimiento no ha cambiado en seis días.",
            ),
            (
                "Solicitud de datos",
                "Conforme al RGPD solicito que eliminen mis datos personales y me lo confirmen.",
            ),
            (
                "Duda sobre tallas",
                "No sé si la chaqueta talla pequeño y me gustaría saberlo antes de decidirme.",
            ),
        ],
    },
    Letters {
        greeting: "Bonjour,",
        closing: "Cordialement,\nClaire Martin\n+33 1 44 55 66 77",
        filler: [
            "Je suis cliente chez vous depuis plusieurs années et j'ai toujours été satisfaite de la qualité de vos produits.",
            "Le mois dernier, j'ai passé une commande sur votre site avec mon compte habituel et je l'ai payée aussitôt.",
            "J'ai essayé de vous joindre par téléphone aujourd'hui, mais la ligne était occupée pendant plus de vingt minutes.",
            "Je vous serais reconnaissante de bien vouloir examiner cette question dès que possible.",
            "Une amie m'a raconté qu'il lui était arrivé quelque chose de très semblable il y a quelques semaines.",
            "Vous trouverez en pièce jointe des captures de la page de confirmation et du courriel reçu ensuite.",
            "N'hésitez pas à me dire si vous avez besoin d'autres informations de ma part.",
            "Avant de vous écrire, j'ai consulté les pages d'aide de votre site, sans y trouver de réponse.",
        ],
        points: [
            (
                "Double prélèvement",
                "Le montant a été prélevé deux fois et je demande le remboursement du second paiement.",
            ),
            (
                "Colis non reçu",
                "Le colis n'est toujours pas arrivé et le suivi n'a pas changé depuis six jours.",
            ),
            (
                "Demande RGPD",
                "Conformément au RGPD, je vous demande de supprimer mes données personnelles.",
            ),
            (
                "Question de taille",
                "Je ne sais pas si la veste taille petit et j'aimerais le savoir avant de décider.",
            ),
        ],
    },
    Letters {
        greeting: "เรียน ฝ่ายบริการลูกค้า",
        closing: "ขอแสดงความนับถือ\nสมศรี ใจดี\n081-234-5678",
        filler: [
            "ดิฉันเป็นลูกค้าของร้านมาหลายปีแล้ว และพอใจกับคุณภาพสินค้ามาโดยตลอด",
            "เมื่อเดือนที่แล้วดิฉันสั่งซื้อสินค้าผ่านทางเว็บไซต์ด้วยบัญชีเดิม และชำระเงินทันที",
            "วันนี้ได้ลองโทรติดต่อไปที่คอลเซ็นเตอร์แล้ว แต่สายไม่ว่างนานกว่ายี่สิบนาที",
            "รบกวนช่วยตรวจสอบเรื่องนี้ให้โดยเร็วที่สุดเท่าที่จะทำได้นะคะ",
            "เพื่อนของดิฉันเล่าว่าเมื่อไม่กี่สัปดาห์ก่อนก็เจอปัญหาคล้ายกัน",
            "ได้แนบภาพหน้าจอยืนยันคำสั่งซื้อและอีเมลที่ได้รับหลังจากนั้นมาให้แล้ว",
            "หากต้องการข้อมูลเพิ่มเติม สามารถติดต่อกลับมาได้ตลอดเวลาค่ะ",
            "ก่อนเขียนมาได้อ่านหน้าช่วยเหลือบนเว็บไซต์แล้ว แต่ไม่พบคำตอบที่ต้องการ",
        ],
        points: [
            (
                "ถูกเก็บเงินซ้ำ",
                "ดิฉันถูกเก็บเงินซ้ำสองครั้งสำหรับคำสั่งซื้อเดียวกัน จึงอยากขอคืนเงินส่วนที่เกินค่ะ",
            ),
            ("ยังไม่ได้รับสินค้า", "จนถึงวันนี้ยังไม่ได้รับสินค้าเลย และสถานะไม่เปลี่ยนมาหกวันแล้ว"),
            (
                "ขอให้ลบข้อมูล",
                "ดิฉันต้องการให้ลบข้อมูลส่วนตัวทั้งหมดของดิฉันออกจากระบบตามกฎหมาย PDPA",
            ),
            (
                "สอบถามเรื่องไซส์",
                "ไม่แน่ใจว่าเสื้อแจ็กเก็ตตัวนี้ไซส์เล็กกว่าปกติหรือไม่ อยากทราบก่อนตัดสินใจค่ะ",
            ),
        ],
    },
    Letters {
        greeting: "السلام عليكم،",
        closing: "مع خالص التحية،\nأحمد محمد\n+966 50 123 4567",
        filler: [
            "أنا عميل لديكم منذ عدة سنوات وكنت دائما راضيا عن جودة منتجاتكم.",
            "في الشهر الماضي قمت بطلب عبر موقعكم الإلكتروني باستخدام حسابي المعتاد ودفعت في الحال.",
            "حاولت الاتصال بكم هاتفيا اليوم، لكن الخط كان مشغولا لأكثر من عشرين دقيقة.",
            "أرجو منكم النظر في هذا الأمر في أقرب وقت ممكن.",
            "أخبرني صديق أنه مر بتجربة مشابهة جدا قبل بضعة أسابيع.",
            "أرفقت صورا لصفحة التأكيد والرسالة التي وصلتني بعد ذلك.",
            "يرجى إبلاغي إذا احتجتم إلى أي معلومات إضافية من جهتي.",
            "قرأت صفحات المساعدة على موقعكم قبل الكتابة، لكنني لم أجد إجابة لسؤالي.",
        ],
        points: [
            (
                "خصم مكرر",
                "لقد تم خصم المبلغ مرتين من بطاقتي لنفس الطلب، وأرغب في استرداد المبلغ الزائد.",
            ),
            (
                "الطلب لم يصل",
                "الطلب لم يصل حتى اليوم، وحالة الشحنة لم تتغير منذ ستة أيام.",
            ),
            (
                "طلب حذف البيانات",
                "أطلب حذف بياناتي الشخصية من أنظمتكم وتأكيد ذلك كتابيا.",
            ),
            (
                "سؤال عن المقاس",
                "لست متأكدا إن كان مقاس السترة صغيرا، وأود أن أعرف قبل أن أقرر.",
            ),
        ],
    },
];

/// Emails of 500 to 2,000 characters: a greeting, the point somewhere in the first
/// paragraphs, context around it (the longest repeat some of it), a signature with a
/// phone number, an address or an order number; in six languages.
fn emails() -> Vec<Message> {
    // Each email stops at the first sentence that reaches its length: up to a sentence over.
    const LENGTHS: [usize; 4] = [520, 900, 1400, 1870];
    let mut emails = Vec::new();
    for (language, letters) in LETTERS.iter().enumerate() {
        for (point, (subject, sentence)) in letters.points.iter().enumerate() {
            let target = LENGTHS[(language + point) % LENGTHS.len()];
            let mut body: Vec<&str> = vec![letters.greeting];
            let mut length = letters.greeting.chars().count() + letters.closing.chars().count();
            let mut filler = letters.filler.iter().cycle().skip(point * 3);
            let mut placed = false;
            loop {
                let next = if !placed && body.len() == 1 + point % 3 {
                    placed = true;
                    sentence
                } else {
                    filler.next().expect("a cycle")
                };
                length += next.chars().count() + 2;
                body.push(next);
                if length >= target {
                    break;
                }
            }
            if !placed {
                body.insert(1, sentence);
            }
            body.push(letters.closing);
            let contact = match (language + point) % 5 {
                0 => json!({"value_tier": "gold"}),
                1 => json!({"campaign": "summer-sale"}),
                2 => json!({"plan": "business", "region": "emea"}),
                _ => json!({}),
            };
            let inbox = if point == 1 { "brand-5" } else { "support-mail" };
            let subject = Some(subject.to_string());
            emails.push(Message::new(
                inbox,
                switchboard::channels::registry::known::EMAIL,
                subject,
                body.join("\n\n"),
                contact,
            ));
        }
    }
    emails
}

/// Calls timed one by one.
pub struct Timing {
    pub calls: u64,
    pub seconds: f64,
    /// Nanoseconds per call.
    pub ns: Histogram<u64>,
    /// Nanoseconds per item, over all passes.
    item_ns: Vec<u64>,
    passes: u64,
}

impl Timing {
    pub fn per_second(&self) -> f64 {
        self.calls as f64 / self.seconds
    }

    pub fn mean_us(&self) -> f64 {
        self.ns.mean() / 1000.0
    }

    pub fn us(&self, percentile: f64) -> f64 {
        self.ns.value_at_quantile(percentile / 100.0) as f64 / 1000.0
    }

    fn item_us(&self, item: usize) -> f64 {
        self.item_ns[item] as f64 / self.passes.max(1) as f64 / 1000.0
    }

    fn to_json(&self) -> Value {
        json!({
            "calls": self.calls,
            "seconds": self.seconds,
            "per_second": self.per_second().round(),
            "mean_us": round(self.mean_us()),
            "p50_us": round(self.us(50.0)),
            "p99_us": round(self.us(99.0)),
            "max_us": round(self.ns.max() as f64 / 1000.0),
        })
    }
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Calls `call` on every item in turn, pass after pass, until `budget` is spent (one
/// pass at least). The caller warms what needs it first: regexes build their automata
/// lazily, per search, and a running daemon's are warm.
fn time<T>(budget: Duration, items: &[T], mut call: impl FnMut(&T)) -> Timing {
    let mut ns = Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
    let mut item_ns = vec![0; items.len()];
    let started = Instant::now();
    let mut passes = 0;
    while passes == 0 || started.elapsed() < budget {
        for (item, total) in items.iter().zip(&mut item_ns) {
            let before = Instant::now();
            call(item);
            let took = before.elapsed().as_nanos() as u64;
            ns.saturating_record(took);
            *total += took;
        }
        passes += 1;
    }
    Timing {
        calls: passes * items.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
        ns,
        item_ns,
        passes,
    }
}

/// Where the messages' first matching rule is: near the top, only near the end, none.
#[derive(Default)]
pub struct Mix {
    pub early: usize,
    pub late: usize,
    pub none: usize,
}

/// Mean cost of a decision by the language detected (`none`: no language detected).
pub struct ByLanguage(Vec<(String, usize, f64)>);

impl ByLanguage {
    fn new(messages: &[Message], timing: &Timing) -> ByLanguage {
        let mut groups: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
        for (item, message) in messages.iter().enumerate() {
            let group = groups.entry(message.language.unwrap_or("none")).or_default();
            group.0 += 1;
            group.1 += timing.item_us(item);
        }
        ByLanguage(
            groups
                .into_iter()
                .map(|(language, (count, total))| (language.to_owned(), count, total / count as f64))
                .collect(),
        )
    }

    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(language, count, mean)| format!("{language} {mean:.0} µs ({count})"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn to_json(&self) -> Value {
        self.0
            .iter()
            .map(|(language, count, mean)| (language.clone(), json!({"messages": count, "mean_us": round(*mean)})))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// One rule alone over the emails: what it adds to each decision.
pub struct RuleCost {
    pub name: String,
    pub email_us: f64,
}

/// Each rule as a router of its own (a clone of a regex starts with cold caches), timed
/// over the emails once after a warm pass; the costliest first. One pass keeps this
/// affordable in the debug build the smoke test runs.
fn rule_costs(rules: &[Rule], emails: &[Message]) -> Vec<RuleCost> {
    let mut costs: Vec<RuleCost> = rules
        .iter()
        .map(|rule| {
            let alone = Router::new(vec![rule.clone()], "support".to_owned());
            for email in emails {
                black_box(alone.route(&email.input()));
            }
            let started = Instant::now();
            for email in emails {
                black_box(alone.route(black_box(&email.input())));
            }
            RuleCost {
                name: rule.0.clone(),
                email_us: started.elapsed().as_secs_f64() * 1e6 / emails.len() as f64,
            }
        })
        .collect();
    costs.sort_by(|a, b| b.email_us.total_cmp(&a.email_us));
    costs
}

pub struct RoutingFigures {
    pub rules: usize,
    pub chat: Timing,
    pub chat_lines: usize,
    pub chat_chars: (usize, usize),
    pub chat_by_language: ByLanguage,
    pub email: Timing,
    pub emails: usize,
    pub email_chars: (usize, usize),
    pub email_by_language: ByLanguage,
    pub mix: Mix,
    /// One email through `explain`, and through `route` for comparison.
    pub explain: Timing,
    pub explained_route: Timing,
    pub explained_matches: usize,
    pub explained_language: Option<&'static str>,
    pub detect_chat: Timing,
    pub detect_email: Timing,
    /// Messages the detector gave a language, of all.
    pub detected: usize,
    /// Every rule's own cost, the costliest first.
    pub rule_costs: Vec<RuleCost>,
}

/// Rules listed in the report, the costliest.
pub const COSTLIEST: usize = 5;

impl RoutingFigures {
    pub fn to_json(&self) -> Value {
        let costs = |costs: &[RuleCost]| -> Vec<Value> {
            costs
                .iter()
                .map(|cost| json!({"rule": cost.name, "email_us": round(cost.email_us)}))
                .collect()
        };
        json!({
            "description": "switchboard::domain::router::Router::route with 200 rules and switchboard::domain::language::detect, in the benchmark's process on one thread (the daemon routes on its writer thread, inside the ingest transaction)",
            "rules": self.rules,
            "chat_lines": {
                "messages": self.chat_lines,
                "chars_min": self.chat_chars.0,
                "chars_max": self.chat_chars.1,
                "route": self.chat.to_json(),
                "route_by_language": self.chat_by_language.to_json(),
                "detect_language": self.detect_chat.to_json(),
            },
            "emails": {
                "messages": self.emails,
                "chars_min": self.email_chars.0,
                "chars_max": self.email_chars.1,
                "route": self.email.to_json(),
                "route_by_language": self.email_by_language.to_json(),
                "detect_language": self.detect_email.to_json(),
            },
            "first_match": {
                "early_rule": self.mix.early,
                "late_rule_only": self.mix.late,
                "no_rule": self.mix.none,
                "late_from_rule": EARLY_RULES,
            },
            "explain_one_email": {
                "language": self.explained_language,
                "rules_matched": self.explained_matches,
                "explain": self.explain.to_json(),
                "route": self.explained_route.to_json(),
            },
            "languages_detected": self.detected,
            "costliest_rules": costs(&self.rule_costs[..COSTLIEST.min(self.rule_costs.len())]),
            "all_rules_alone_email_us": round(self.rule_costs.iter().map(|cost| cost.email_us).sum()),
        })
    }
}

/// Each of the six timings gets a sixth of `budget` (a pass at least); routing every
/// message once before them and the rules' own costs take a little more.
pub fn run(budget: Duration) -> RoutingFigures {
    let rules = two_hundred_rules();
    let router = Router::new(rules.clone(), "support".to_owned());
    let chat = chat_lines();
    let emails = emails();
    let slice = budget / 6;
    let span = |messages: &[Message]| {
        let lengths = messages.iter().map(Message::chars);
        (lengths.clone().min().unwrap_or(0), lengths.max().unwrap_or(0))
    };

    // Every message routed once: the mix, and the router's regexes warm for the timings.
    let decisions: Vec<_> = chat.iter().chain(&emails).map(|m| router.route(&m.input())).collect();
    let position: HashMap<&str, usize> = rules.iter().enumerate().map(|(i, rule)| (rule.0.as_str(), i)).collect();
    let mut mix = Mix::default();
    for decision in &decisions {
        match decision.matched.first() {
            None => mix.none += 1,
            Some(first) if position[first.as_str()] < EARLY_RULES => mix.early += 1,
            Some(_) => mix.late += 1,
        }
    }
    // The longest email that matches most rules: the explanation with the most to show.
    let (explained, explained_matches) = emails
        .iter()
        .zip(&decisions[chat.len()..])
        .map(|(email, decision)| (email, decision.matched.len()))
        .max_by_key(|(email, matches)| (*matches, email.text.len()))
        .expect("emails");

    let route = |message: &Message| {
        black_box(router.route(black_box(&message.input())));
    };
    let detect = |message: &Message| {
        black_box(switchboard::domain::language::detect(black_box(&message.text)));
    };
    let chat_timing = time(slice, &chat, route);
    let email_timing = time(slice, &emails, route);
    RoutingFigures {
        rules: rules.len(),
        chat_by_language: ByLanguage::new(&chat, &chat_timing),
        chat: chat_timing,
        chat_lines: chat.len(),
        chat_chars: span(&chat),
        email_by_language: ByLanguage::new(&emails, &email_timing),
        email: email_timing,
        emails: emails.len(),
        email_chars: span(&emails),
        mix,
        explain: time(slice, std::slice::from_ref(explained), |message| {
            black_box(router.explain(black_box(&message.input())));
        }),
        explained_route: time(slice, std::slice::from_ref(explained), route),
        explained_matches,
        explained_language: explained.language,
        detect_chat: time(slice, &chat, detect),
        detect_email: time(slice, &emails, detect),
        detected: chat.iter().chain(&emails).filter(|m| m.language.is_some()).count(),
        rule_costs: rule_costs(&rules, &emails),
    }
}
