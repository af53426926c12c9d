from rateline_shared.service import service_main
from rateline_webhooks.app import MIGRATIONS
from rateline_webhooks.events import SERVICE
from rateline_webhooks.settings import WebhooksSettings


def main() -> None:
    service_main(
        service=SERVICE,
        app_factory="rateline_webhooks.app:create_app",
        settings=WebhooksSettings(),
        migrations_dir=MIGRATIONS,
    )


if __name__ == "__main__":
    main()
