from rateline_shared.service import service_main
from rateline_usage.app import MIGRATIONS
from rateline_usage.events import SERVICE
from rateline_usage.settings import UsageSettings


def main() -> None:
    service_main(
        service=SERVICE,
        app_factory="rateline_usage.app:create_app",
        settings=UsageSettings(),
        migrations_dir=MIGRATIONS,
    )


if __name__ == "__main__":
    main()
