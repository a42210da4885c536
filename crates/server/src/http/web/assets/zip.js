// Replaced by the archive writer (see the web app work); sending several files needs it.
export async function planArchive() { throw new Error('archives are not available yet'); }
