"""Text as it arrives, for redaction tests: each secret shape, and personal data of each kind."""

from __future__ import annotations

from flows.evidence.personal import PersonalData

RSA_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)
EC_KEY = (
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\n"
    "-----END EC PRIVATE KEY-----"
)
OPENSSH_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACDzPhRxWh9qB0oX3pJv7GkQYcLJmTaO5nF8bYwM2aHc1QAAAJgAAAAA\n"
    "-----END OPENSSH PRIVATE KEY-----"
)
PGP_KEY = (
    "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n"
    "lQOYBGVxZ0IBCADJ7s3mTqkbN1b9hUu0Pq3xY2dFvR8wLkZcQ1eT4yHnJ6oM5aB\n"
    "-----END PGP PRIVATE KEY BLOCK-----"
)

# (what the log line says, the secret that must go)
SHAPES = {
    "openai-project": (
        "OPENAI_API_KEY is sk-proj-Q7vTn2Xb9LmZp4Rk8WsY1cJd6FhGa3EuNo5Vi0TqBxKeMrLwT3BlbkFJ",
        "sk-proj-Q7vTn2Xb9LmZp4Rk8WsY1cJd6FhGa3EuNo5Vi0TqBxKeMrLwT3BlbkFJ",
    ),
    "openai-legacy": (
        "client = OpenAI(api_key=sk-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78St90Uv12Wx34)",
        "sk-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78St90Uv12Wx34",
    ),
    "openai-service-account": (
        "using sk-svcacct-9fXc2LmQ7rTz4KvB1nWp8YsD3hJ6gA0e for the batch job",
        "sk-svcacct-9fXc2LmQ7rTz4KvB1nWp8YsD3hJ6gA0e",
    ),
    "anthropic": (
        "x-api-key header was sk-ant-api03-R2d9Xk4LmP7qTz1VbN8cW3yF6hJ0sGaE5uKoI"
        "-ZxYwVuTsRqPoNmLkJiHgFeDcBa_0123456789abcdefAA in the request",
        "sk-ant-api03-R2d9Xk4LmP7qTz1VbN8cW3yF6hJ0sGaE5uKoI",
    ),
    "github-classic": (
        "git clone https://ghp_R8fX2kLm9Qz4Tb7Vn1Wc5Yd3Hj6Ga0EsUoPi@github.com/acme/app",
        "ghp_R8fX2kLm9Qz4Tb7Vn1Wc5Yd3Hj6Ga0EsUoPi",
    ),
    "github-fine-grained": (
        "GH_TOKEN=github_pat_11ABCDE2Y0aBcDeFgHiJkL_mNoPqRsTuVwXyZ0123456789abcdefGHIJKLmnopQRS"
        "tuvWXyz01 exported",
        "github_pat_11ABCDE2Y0aBcDeFgHiJkL_mNoPqRsTuVwXyZ0123456789",
    ),
    "github-oauth": (
        "oauth callback returned gho_16C7e42F292c6912E7710c838347Ae178B4a for the user",
        "gho_16C7e42F292c6912E7710c838347Ae178B4a",
    ),
    "slack-bot": (
        "SLACK_BOT_TOKEN xoxb-2048301524823-4971235698210-Zq8Lm3Tb7Vn1Wc5Yd3Hj6Ga0 loaded",
        "xoxb-2048301524823-4971235698210-Zq8Lm3Tb7Vn1Wc5Yd3Hj6Ga0",
    ),
    "slack-user": (
        "curl -d token=xoxp-2048301524823-2048301525111-4971235698210-9c1f0e8a7b6d5c4e3f2a",
        "xoxp-2048301524823-2048301525111-4971235698210-9c1f0e8a7b6d5c4e3f2a",
    ),
    "slack-app": (
        "socket mode app token: xapp-1-A05R7K2LMNP-6023456789012-f3a9c1e5b7d2a4c6e8f0a1b3",
        "xapp-1-A05R7K2LMNP-6023456789012-f3a9c1e5b7d2a4c6e8f0a1b3",
    ),
    "jwt": (
        "cookie id_token eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTc2N"
        "DAwMDAwMH0.Qm9ndXNTaWduYXR1cmVGb3JUZXN0aW5nT25seQ expired",
        "eyJzdWIiOiJhbGljZSIsImV4cCI6MTc2N",
    ),
    "rsa-private-key": (f"key file:\n{RSA_KEY}\n", "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgO"),
    "ec-private-key": (f"key file:\n{EC_KEY}\n", "MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04f"),
    "openssh-private-key": (f"id_ed25519:\n{OPENSSH_KEY}\n", "QyNTUxOQAAACDzPhRxWh9qB0oX3pJv7GkQ"),
    "pgp-private-key": (f"exported:\n{PGP_KEY}\n", "lQOYBGVxZ0IBCADJ7s3mTqkbN1b9hUu0Pq3xY2d"),
    "postgres-url": (
        "DATABASE_URL=postgres://orders_app:Xk9!vQ2pLm@db-1.internal:5432/orders",
        "Xk9!vQ2pLm",
    ),
    "mongodb-srv-url": (
        "connecting to mongodb+srv://reporting:Tz4Kv8Wb1n@cluster0.ab1cd.mongodb.net/prod",
        "Tz4Kv8Wb1n",
    ),
    "redis-url-no-user": ("cache at redis://:R3d1sP4ss@cache-1:6379/0 is up", "R3d1sP4ss"),
}

# (a line holding one value of the kind, a part of that value, its kind); each value is real:
# it passes its kind's checks.
PERSONAL = {
    "email": (
        "reset link sent to alice.nguyen+billing@example.co.uk at 10:02",
        "alice.nguyen",
        PersonalData.EMAIL,
    ),
    "email-in-json": (
        '{"customer": {"contact": "j.doe@mail.example.com"}}',
        "j.doe@mail",
        PersonalData.EMAIL,
    ),
    "phone-international": (
        "callback requested on +44 20 7946 0018 by the user",
        "7946 0018",
        PersonalData.PHONE,
    ),
    "phone-us-parentheses": (
        "support line (415) 555-2671 logged the call",
        "555-2671",
        PersonalData.PHONE,
    ),
    "phone-us-dashes": ("sms sent to 212-555-0143 for the OTP", "212-555-0143", PersonalData.PHONE),
    "phone-e164": ("twilio to=+14155552671 status=queued", "+14155552671", PersonalData.PHONE),
    "card-visa-spaced": (
        "charge failed for card 4111 1111 1111 1111 exp 12/29",
        "4111 1111",
        PersonalData.CARD,
    ),
    "card-mastercard": ("pan=5555555555554444 amount=12.00", "5555555555554444", PersonalData.CARD),
    "card-amex": ("amex 3782 822463 10005 declined", "822463", PersonalData.CARD),
    "ssn": ("applicant ssn 536-90-4399 matched", "536-90-4399", PersonalData.NATIONAL_ID),
    "nino": ("employee NI number AB 12 34 56 C on file", "12 34 56", PersonalData.NATIONAL_ID),
    "iban": ("refund to GB82 WEST 1234 5698 7654 32 queued", "5698 7654", PersonalData.IBAN),
    "iban-compact": (
        "sepa debtor DE89370400440532013000 rejected",
        "DE89370400440532013000",
        PersonalData.IBAN,
    ),
}
