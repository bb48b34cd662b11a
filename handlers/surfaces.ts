/**
 * The optional chat surfaces `npm start` knows about. Each factory returns undefined when its
 * credentials are not configured.
 */
import type { SurfaceFactory } from './app.js';

export const surfaceFactories: readonly SurfaceFactory[] = [];
