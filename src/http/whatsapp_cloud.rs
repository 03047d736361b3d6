//! `/whatsapp/cloud`: Meta's WhatsApp Cloud API webhook. `GET` answers the verification
//! handshake; `POST` checks `X-Hub-Signature-256` over the raw body (403, nothing stored,
//! before anything is parsed), stores the delivery and answers 200 at once: Meta retries
//! a slow or failing webhook for days and may disable it, so processing happens after
//! the answer (see `app::inbox`).

use std::sync::Arc;

use poem::web::Data;
use poem::{Request, RequestBody};
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::{ParsePayload, Payload, PlainText};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions, Object, OpenApi};
use subtle::ConstantTimeEq;

use super::api::ApiTags;
use super::problem::ProblemBody;
use super::AppState;
use crate::adapters::meta::signature;
use crate::app::inbox::store_delivery;
use crate::app::jobs::JobSignal;
use crate::config::Secret;
use crate::domain::model::Channel;

/// The route, outside the REST API's input cleaning (the signature covers the body as sent).
pub const PATH: &str = "/whatsapp/cloud";
/// The longest `hub.challenge` echoed (Meta's are a few digits).
const MAX_CHALLENGE_CHARS: usize = 512;

/// What the Cloud API webhook needs; absent when Meta's channel is not configured.
pub struct CloudWebhook {
    pub app_secret: Secret,
    pub verify_token: Secret,
    /// Wakes a worker for each stored delivery.
    pub signal: Option<Arc<JobSignal>>,
}

/// A delivery as Meta posts it (documentation of the body; the service reads it from
/// the raw bytes the signature covers).
#[derive(Object)]
#[oai(rename = "CloudApiDelivery")]
pub struct CloudApiDeliveryDoc {
    /// Always `whatsapp_business_account`.
    pub object: String,
    /// One entry per WhatsApp Business Account, each with `changes[]`, each change with
    /// `field` (`messages`) and a `value` holding `metadata`, `contacts[]`, `messages[]`
    /// (text, image, audio, video, document, location, contacts, interactive …) and
    /// `statuses[]` (sent, delivered, read, failed).
    pub entry: Vec<serde_json::Value>,
}

/// The raw JSON body, kept byte for byte for the signature.
pub struct SignedJson(pub Vec<u8>);

impl Payload for SignedJson {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        content_type.split(';').next().is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
    }

    fn schema_ref() -> MetaSchemaRef {
        CloudApiDeliveryDoc::schema_ref()
    }

    fn register(registry: &mut Registry) {
        CloudApiDeliveryDoc::register(registry);
    }
}

impl ParsePayload for SignedJson {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        Ok(Self(<Vec<u8> as poem::FromRequest>::from_request(request, body).await?))
    }
}

impl<'a> ApiExtractor<'a> for SignedJson {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Self as Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: Some("The delivery, signed by Meta in `X-Hub-Signature-256`."),
            content: vec![MetaMediaType { content_type: Self::CONTENT_TYPE, schema: Self::schema_ref() }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        match request.content_type() {
            Some(content_type) if Self::check_content_type(content_type) => {
                <Self as ParsePayload>::from_request(request, body).await
            }
            Some(content_type) => {
                Err(poem_openapi::error::ContentTypeError::NotSupported { content_type: content_type.to_string() }
                    .into())
            }
            None => Err(poem_openapi::error::ContentTypeError::ExpectContentType.into()),
        }
    }
}

/// The handshake's answers.
#[derive(ApiResponse)]
pub enum VerifyAnswer {
    /// The token matches: `hub.challenge`, as the plain body Meta expects.
    #[oai(status = 200)]
    Challenge(PlainText<String>),
    /// Not a subscription request, or the token does not match `META_VERIFY_TOKEN`.
    #[oai(status = 403)]
    Forbidden(ProblemBody<403>),
    /// Meta's WhatsApp Cloud API is not configured on this server.
    #[oai(status = 404)]
    NotConfigured(ProblemBody<404>),
}

/// A delivery's answers.
#[derive(ApiResponse)]
pub enum DeliveryAnswer {
    /// Stored; its messages are processed (and answered) in the background.
    #[oai(status = 200)]
    Received(PlainText<String>),
    /// `X-Hub-Signature-256` is missing or is not the app secret's signature of the body:
    /// nothing was stored.
    #[oai(status = 403)]
    Forbidden(ProblemBody<403>),
    /// Meta's WhatsApp Cloud API is not configured on this server.
    #[oai(status = 404)]
    NotConfigured(ProblemBody<404>),
    /// The body is larger than the API accepts (answered before the handler runs).
    #[oai(status = 413)]
    PayloadTooLarge(ProblemBody<413>),
    /// The body is not `application/json` (answered before the handler runs).
    #[oai(status = 415)]
    UnsupportedMediaType(ProblemBody<415>),
    /// The delivery could not be stored right now; Meta delivers it again.
    #[oai(status = 503)]
    Unavailable(ProblemBody<503>, #[oai(header = "Retry-After")] String),
}

const NOT_CONFIGURED: &str =
    "Meta's WhatsApp Cloud API is not configured on this server (META_APP_SECRET and the other META_ variables).";

/// Meta's WhatsApp Cloud API webhook.
pub struct WhatsAppCloudApi;

#[OpenApi(tag = "ApiTags::Channels")]
impl WhatsAppCloudApi {
    /// Verify the Cloud API webhook
    ///
    /// Meta's handshake when the callback URL is set in the app dashboard: with
    /// `hub.mode=subscribe` and `hub.verify_token` equal to `META_VERIFY_TOKEN`, the answer
    /// is `hub.challenge` as plain text; anything else is 403. Needs no API key.
    #[oai(path = "/whatsapp/cloud", method = "get", operation_id = "verifyCloudWebhook")]
    async fn verify(
        &self,
        state: Data<&Arc<AppState>>,
        /// `subscribe`.
        #[oai(name = "hub.mode")]
        mode: Query<Option<String>>,
        /// The verify token set in Meta's dashboard.
        #[oai(name = "hub.verify_token")]
        verify_token: Query<Option<String>>,
        /// A value to echo.
        #[oai(name = "hub.challenge")]
        challenge: Query<Option<String>>,
    ) -> VerifyAnswer {
        let Some(cloud) = &state.cloud else {
            return VerifyAnswer::NotConfigured(ProblemBody::new(NOT_CONFIGURED));
        };
        let token_matches = verify_token
            .0
            .as_deref()
            .is_some_and(|token| bool::from(token.as_bytes().ct_eq(cloud.verify_token.expose().as_bytes())));
        match (mode.0.as_deref(), token_matches, challenge.0) {
            (Some("subscribe"), true, Some(challenge)) if challenge.chars().count() <= MAX_CHALLENGE_CHARS => {
                tracing::info!("Meta's webhook verification passed");
                VerifyAnswer::Challenge(PlainText(challenge))
            }
            _ => {
                tracing::warn!("a Cloud API webhook verification was refused");
                VerifyAnswer::Forbidden(ProblemBody::new("The verification request or its token is not valid."))
            }
        }
    }

    /// Receive Cloud API deliveries
    ///
    /// Meta posts messages and delivery statuses here, signed with the app secret in
    /// `X-Hub-Signature-256` (`sha256=` and the hex HMAC-SHA256 of the raw body). A
    /// delivery is checked, stored and answered 200 at once; every message it holds is
    /// then saved and answered through the Cloud API, once per `wamid` however often Meta
    /// delivers it. Needs no API key.
    #[oai(path = "/whatsapp/cloud", method = "post", operation_id = "receiveCloudDelivery")]
    async fn receive(
        &self,
        state: Data<&Arc<AppState>>,
        /// `sha256=<hex HMAC-SHA256 of the body with the app secret>`.
        #[oai(name = "X-Hub-Signature-256")]
        hub_signature: Header<Option<String>>,
        body: SignedJson,
    ) -> DeliveryAnswer {
        let Some(cloud) = &state.cloud else {
            return DeliveryAnswer::NotConfigured(ProblemBody::new(NOT_CONFIGURED));
        };
        let signed =
            hub_signature.0.as_deref().is_some_and(|header| signature::is_valid(&cloud.app_secret, &body.0, header));
        if !signed {
            tracing::warn!(
                signed = hub_signature.0.is_some(),
                "Cloud API delivery with a missing or invalid signature refused"
            );
            return DeliveryAnswer::Forbidden(ProblemBody::new("The request signature is missing or invalid."));
        }
        let now = state.clock.now();
        match store_delivery(&*state.repository, cloud.signal.as_deref(), Channel::Meta, &body.0, now).await {
            Ok(()) => DeliveryAnswer::Received(PlainText("EVENT_RECEIVED".into())),
            Err(error) => {
                tracing::warn!(%error, "a Cloud API delivery could not be stored; Meta will deliver it again");
                DeliveryAnswer::Unavailable(
                    ProblemBody::new("The delivery could not be stored right now; please deliver it again."),
                    "5".into(),
                )
            }
        }
    }
}
