from rateline_catalog.app import MIGRATIONS
from rateline_catalog.events import SERVICE
from rateline_catalog.settings import CatalogSettings
from rateline_shared.service import service_main


def main() -> None:
    service_main(
        service=SERVICE,
        app_factory="rateline_catalog.app:create_app",
        settings=CatalogSettings(),
        migrations_dir=MIGRATIONS,
    )


if __name__ == "__main__":
    main()
