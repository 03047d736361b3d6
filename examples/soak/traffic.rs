//! Builds each soak request just before it is due: signed webhooks (texts, commands,
//! photos, voice notes), exact redeliveries of answered texts, and REST calls with the API
//! key. Built one at a time because ten minutes of requests would not fit in memory.

use std::collections::VecDeque;
use std::fmt::Write as _;

use anyhow::{bail, Context, Result};

use super::mix::{Kind, Mix};
use crate::{Rng, SidGen, Signer, User, Vocabulary};

/// How many answered texts each worker keeps for redelivery; old enough to be answered,
/// few enough to cost nothing.
const REDELIVERY_RING: usize = 64;

/// The first hex digits of a voice note's media sid: the fake Twilio serves the Ogg note
/// for those and the photo for any other (`bench/fake_twilio.py`, both files given).
pub const VOICE_MEDIA_MARK: &str = "a0d10";

/// What every worker shares to build requests.
pub struct Plan {
    /// Signs every webhook as Twilio does, for the server's auth token.
    pub signer: Signer,
    /// The memo and query words, the same as the other load modes use.
    pub vocab: Vocabulary,
    /// The senders, `whatsapp:+15550000000` on.
    pub users: Vec<User>,
    /// Photos and voice notes come from the first this many users only: each one's first
    /// photo is read by OCR and first note transcribed (seconds of CPU); later ones are
    /// near or exact duplicates, the path a steady stream of media takes.
    pub media_users: usize,
    /// Which kinds to send, how often.
    pub mix: Mix,
    /// Unique `MessageSid`s for this run.
    pub sids: SidGen,
    /// `{media base}/2010-04-01/Accounts/{sid}/Messages/`.
    pub media_prefix: String,
    /// "Host: …\r\nAuthorization: Bearer …\r\n" for the REST requests.
    pub rest_headers: String,
}

impl Plan {
    /// The REST requests' headers for the server behind `webhook_url`.
    ///
    /// # Errors
    /// A URL that is not plain `http://` with a host.
    pub fn rest_headers(webhook_url: &str, api_key: &str) -> Result<String> {
        let url = url::Url::parse(webhook_url).with_context(|| format!("bad --url {webhook_url}"))?;
        if url.scheme() != "http" {
            bail!("--url must be plain http://");
        }
        let host = url.host_str().context("--url has no host")?;
        let host = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        Ok(format!("Host: {host}\r\nUser-Agent: whatsapp-memory-soak\r\nAuthorization: Bearer {api_key}\r\n"))
    }
}

/// One request ready to send.
pub struct Planned {
    /// What it is, to judge its answer and count it.
    pub kind: Kind,
    /// The whole HTTP request, written as is.
    pub bytes: Box<[u8]>,
    /// Index of the sender in [`Plan::users`], so that an answered text names a user who
    /// exists (the REST search asks about those: an unknown user is a 404 by design).
    pub user: usize,
}

/// One worker's request builder: its own random stream and its own answered texts.
pub struct Traffic {
    rng: Rng,
    /// Texts this worker sent and saw answered "Memory saved" (bytes and sender), newest
    /// last.
    answered: VecDeque<(Box<[u8]>, usize)>,
}

impl Traffic {
    /// A builder whose random stream depends on the run's seed and the worker.
    pub fn new(seed: u64, worker: usize) -> Self {
        Self { rng: Rng::new(seed ^ (0x50a4_0000 + worker as u64)), answered: VecDeque::with_capacity(REDELIVERY_RING) }
    }

    /// The request with index `i` of the run (its sid is derived from `i`, so unique).
    /// A redelivery or a REST search before this worker saw any text answered is a new
    /// text instead.
    pub fn next(&mut self, plan: &Plan, i: u64) -> Planned {
        let kind = plan.mix.pick(&mut self.rng);
        let sid = plan.sids.sid(i);
        match kind {
            Kind::Duplicate => match self.answered_pick() {
                Some((bytes, user)) => Planned { kind, bytes, user },
                None => self.text(plan, sid),
            },
            Kind::Text => self.text(plan, sid),
            Kind::Search => {
                let (words, _) = plan.vocab.query(&mut self.rng);
                self.message(plan, kind, sid, &format!("/search {words}"))
            }
            Kind::List => self.message(plan, kind, sid, "/list last week"),
            Kind::Question => {
                let (words, _) = plan.vocab.query(&mut self.rng);
                self.message(plan, kind, sid, &format!("where did I note the {words}?"))
            }
            Kind::Photo | Kind::Voice => self.media(plan, kind, sid),
            Kind::ApiCreate => self.api_create(plan),
            Kind::ApiSearch => match self.answered_pick() {
                Some((_, user)) => self.api_search(plan, user),
                None => self.text(plan, sid),
            },
        }
    }

    /// Keeps an answered text for later redelivery (the oldest goes when full).
    pub fn answered_text(&mut self, planned: Planned) {
        if self.answered.len() == REDELIVERY_RING {
            self.answered.pop_front();
        }
        self.answered.push_back((planned.bytes, planned.user));
    }

    /// One answered text: a copy of its bytes (Twilio's retry of the same delivery is the
    /// same bytes) and its sender (who exists by now).
    fn answered_pick(&mut self) -> Option<(Box<[u8]>, usize)> {
        if self.answered.is_empty() {
            return None;
        }
        let pick = self.rng.below(self.answered.len() as u64) as usize;
        self.answered.get(pick).cloned()
    }

    /// Any user's index, uniformly.
    fn any_user(&mut self, plan: &Plan) -> usize {
        self.rng.below(plan.users.len() as u64) as usize
    }

    /// A new memo from a random user.
    fn text(&mut self, plan: &Plan, sid: u128) -> Planned {
        let body = plan.vocab.sentence(&mut self.rng);
        self.message(plan, Kind::Text, sid, &body)
    }

    /// A signed text message with `body` from a random user.
    fn message(&mut self, plan: &Plan, kind: Kind, sid: u128, body: &str) -> Planned {
        let user = self.any_user(plan);
        Planned { kind, bytes: plan.signer.request(sid, &plan.users[user], body).bytes, user }
    }

    /// A photo or a voice note from one of the media users, its URL on the fake Twilio.
    fn media(&mut self, plan: &Plan, kind: Kind, sid: u128) -> Planned {
        let user = self.rng.below(plan.media_users.clamp(1, plan.users.len()) as u64) as usize;
        let mut url = String::with_capacity(plan.media_prefix.len() + 80);
        // The low 108 bits of the sid keep media sids unique; the mark says which file.
        let low = sid & ((1u128 << 108) - 1);
        let (mark, content_type) =
            if kind == Kind::Voice { (VOICE_MEDIA_MARK, "audio/ogg") } else { ("00000", "image/jpeg") };
        let _ = write!(url, "{}MM{sid:032x}/Media/ME{mark}{low:027x}", plan.media_prefix);
        Planned { kind, bytes: plan.signer.media_request(sid, &plan.users[user], &url, content_type).bytes, user }
    }

    /// `POST /memories` for a random user (created if new): a memo with a label, as an app
    /// would save it.
    fn api_create(&mut self, plan: &Plan) -> Planned {
        let user = self.any_user(plan);
        let body = serde_json::json!({ "text": plan.vocab.sentence(&mut self.rng), "labels": ["soak"] }).to_string();
        let mut req = String::with_capacity(256 + body.len());
        let _ = write!(
            req,
            "POST /memories?user_id={} HTTP/1.1\r\n{}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            plan.users[user].wa_id,
            plan.rest_headers,
            body.len()
        );
        Planned { kind: Kind::ApiCreate, bytes: req.into_bytes().into_boxed_slice(), user }
    }

    /// `GET /memories?query=` for `user` (one who has written), with words drawn like
    /// `/search`'s.
    fn api_search(&mut self, plan: &Plan, user: usize) -> Planned {
        let (words, _) = plan.vocab.query(&mut self.rng);
        let query: String = url::form_urlencoded::byte_serialize(words.as_bytes()).collect();
        let mut req = String::with_capacity(256);
        let _ = write!(
            req,
            "GET /memories?user_id={}&query={query}&limit=10 HTTP/1.1\r\n{}\r\n",
            plan.users[user].wa_id, plan.rest_headers
        );
        Planned { kind: Kind::ApiSearch, bytes: req.into_bytes().into_boxed_slice(), user }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    /// A plan for a server on a loopback port nothing needs to answer on.
    fn plan(mix: &str) -> Plan {
        let cli =
            crate::Cli::try_parse_from(["loadgen", "webhook", "--url", "http://127.0.0.1:9/webhook", "--token", "t"])
                .unwrap();
        let crate::Command::Webhook(args) = cli.command else { unreachable!("parsed as webhook") };
        Plan {
            signer: Signer::new(&args.target).unwrap(),
            vocab: Vocabulary::new(),
            users: (0..50).map(User::new).collect(),
            media_users: 3,
            mix: Mix::with_overrides(mix).unwrap(),
            sids: SidGen::new(5),
            media_prefix: "http://127.0.0.1:9/2010-04-01/Accounts/AC1/Messages/".into(),
            rest_headers: Plan::rest_headers("http://127.0.0.1:9/webhook", "key").unwrap(),
        }
    }

    /// Only `kind`: every other weight zero.
    fn only(kind: Kind) -> String {
        Kind::ALL.iter().map(|k| format!("{}={}", k.name(), u32::from(*k == kind))).collect::<Vec<_>>().join(",")
    }

    #[test]
    fn a_redelivery_repeats_an_answered_text_byte_for_byte() {
        let (texts, duplicates) = (plan(&only(Kind::Text)), plan(&only(Kind::Duplicate)));
        let mut traffic = Traffic::new(1, 0);
        // Nothing answered yet: a new text instead.
        assert_eq!(traffic.next(&duplicates, 0).kind, Kind::Text);
        let first = traffic.next(&texts, 1);
        let (bytes, user) = (first.bytes.clone(), first.user);
        traffic.answered_text(first);
        let again = traffic.next(&duplicates, 2);
        assert_eq!((again.kind, &again.bytes, again.user), (Kind::Duplicate, &bytes, user));
    }

    #[test]
    fn a_rest_search_asks_about_a_user_who_has_written() {
        let (texts, searches) = (plan(&only(Kind::Text)), plan(&only(Kind::ApiSearch)));
        let mut traffic = Traffic::new(2, 0);
        assert_eq!(traffic.next(&searches, 0).kind, Kind::Text);
        let first = traffic.next(&texts, 1);
        let wa_id = texts.users[first.user].wa_id.clone();
        traffic.answered_text(first);
        let search = traffic.next(&searches, 2);
        let head = String::from_utf8(search.bytes.to_vec()).unwrap();
        assert!(head.starts_with(&format!("GET /memories?user_id={wa_id}&query=")), "{head}");
        assert!(head.contains("Authorization: Bearer key\r\n") && head.ends_with("\r\n\r\n"), "{head}");
    }

    #[test]
    fn media_come_from_the_media_users_with_the_mark_that_picks_the_file() {
        for (kind, mark, content_type) in
            [(Kind::Voice, VOICE_MEDIA_MARK, "audio%2Fogg"), (Kind::Photo, "00000", "image%2Fjpeg")]
        {
            let plan = plan(&only(kind));
            let mut traffic = Traffic::new(3, 0);
            for i in 0..20 {
                let media = traffic.next(&plan, i);
                assert!(media.user < 3);
                let form = String::from_utf8(media.bytes.to_vec()).unwrap();
                assert!(form.contains(&format!("%2FMedia%2FME{mark}")), "{form}");
                assert!(form.contains(&format!("MediaContentType0={content_type}")), "{form}");
            }
        }
    }
}
