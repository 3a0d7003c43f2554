"""Static files storage of production: whitenoise's hashed names and gzip, without brotli.

brotli (installed anyway: WeasyPrint's fonttools needs it) at its best quality costs about half
a minute of CPU per `collectstatic` for the Swagger UI and Redoc bundles, to save a few percent
over gzip on pages staff load once a session. gzip is what every browser and proxy accepts.
"""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class GzipManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    def create_compressor(self, **kwargs):
        return super().create_compressor(use_brotli=False, **kwargs)
