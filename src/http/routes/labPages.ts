/** The HTML shells: /lab/:instance (students and watching teachers) and /course/:context (teachers). */
import express, { type Router } from 'express';
import { servePage } from '../pages/pageShell.js';

export function labPagesRouter(): Router {
  const r = express.Router();
  r.get('/lab/:instance', servePage({ title: 'lab.pageTitle', bundle: 'lab', param: 'instance' }));
  r.get('/course/:context', servePage({ title: 'course.title', bundle: 'course', param: 'context' }));
  return r;
}
