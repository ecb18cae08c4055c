/** The conformance suite's core behaviours on the DynamoDB engine (DynamoDB Local); the rest in dynamodb-features.test.ts. */
import { defineDynamoDbConformance } from './dynamodb-engine.js';

defineDynamoDbConformance('core');
