// Uploads a file to a signed upload URL with the Azure SDK the toolkit uses, but with small
// blocks, so the cache sees Put Block (?comp=block&blockid=) and Put Block List (?comp=blocklist)
// the way a multi-GiB archive would produce them (the toolkit itself switches to blocks above 128 MiB).
//   node upload-blocks.mjs <signedUploadUrl> <file> <blockSizeBytes>
import { BlobClient } from '@azure/storage-blob';

const [url, file, blockSize] = process.argv.slice(2);
try {
  const client = new BlobClient(url).getBlockBlobClient();
  const response = await client.uploadFile(file, { blockSize: Number(blockSize), maxSingleShotSize: Number(blockSize), concurrency: 4 });
  console.log('RESULT ' + JSON.stringify({ status: response._response.status }));
} catch (error) {
  console.log('RESULT ' + JSON.stringify({ error: String(error?.message ?? error), status: error?.statusCode ?? null }));
  process.exitCode = 1;
}
